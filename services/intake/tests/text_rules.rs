//! One rule per request field, through the real gRPC service (real
//! nats-server, PostgreSQL): a title with NUL or a right-to-left override,
//! a reporter name with a bidirectional isolate and a request id outside the
//! documented characters are refused with a field violation, and nothing is
//! stored: no event appended, no report listed.

mod common;

use common::{DEADLINE, Harness, submission};
use psirt_kit::config::AuthMode;
use psirt_proto::intake;
use psirt_testkit::{Backend, eventually};
use tonic::Code;
use tonic_types::StatusExt;

fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| (v.field, v.description)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn control_and_bidi_override_characters_are_refused_and_nothing_is_stored() -> anyhow::Result<()> {
    let h = Harness::start(Backend::Postgres, AuthMode::None).await?;
    let mut client = h.client().await?;
    let before = h.stream_messages().await?;
    type Mutation = fn(&mut intake::SubmitReportRequest);
    let cases: Vec<(&str, &str, Mutation)> = vec![
        ("title", "U+0000", |r| r.title = "Overflow\u{0} in parser".to_owned()),
        ("title", "U+202E", |r| r.title = "Invoice \u{202E}fdp.exe".to_owned()),
        ("title", "U+000A", |r| r.title = "two\nlines".to_owned()),
        ("reporter.name", "U+2066", |r| {
            r.reporter.as_mut().expect("reporter").name = "Mallory\u{2066}".to_owned()
        }),
        ("description", "U+0000", |r| r.description = "steps:\n\u{0}".to_owned()),
        ("affected_products[0]", "U+202D", |r| r.affected_products = vec!["Por\u{202D}tal".to_owned()]),
        ("request_id", "A-Z a-z 0-9", |r| r.request_id = "has spaces and ☃".to_owned()),
    ];
    for (field, mention, mutate) in cases {
        let mut request = submission(&format!("bad-{}", uuid::Uuid::new_v4()), "A title");
        mutate(&mut request);
        let status = client.submit_report(request).await.expect_err("must be refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let found = violations(&status);
        assert!(
            found.iter().any(|(f, d)| f == field && d.contains(mention)),
            "{field} ({mention}) in {found:?}"
        );
    }
    assert_eq!(h.stream_messages().await?, before, "no event was appended");

    // Legitimate Unicode passes; once it is listed, the read model has
    // caught up, and it is the only report there.
    let title = "Überlauf im 認証-Modul 🔓";
    let mut request = submission("good-1", title);
    request.description = "1. open\n\t2. crash\r\n".to_owned();
    client.submit_report(request).await?;
    let listed = eventually(DEADLINE, "the good report listed", || {
        let mut client = client.clone();
        async move {
            let reports =
                client.list_reports(intake::ListReportsRequest::default()).await.ok()?.into_inner().reports;
            (!reports.is_empty()).then_some(reports)
        }
    })
    .await?;
    let titles: Vec<&str> = listed.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(titles, [title], "no refused report was stored");
    Ok(())
}
