//! Product scopes (issue 15, point 2) in notification: a principal scoped to
//! a product sees only the deliveries of that product's cases and the
//! subscriptions whose products filter names a product in scope; a delivery
//! out of scope answers NOT_FOUND exactly like a missing one. `*` holders and
//! admins see everything; a case without products only they see.

mod support;

use psirt_domain::{CaseId, DeliveryId, ReportId};
use psirt_kit::config::AuthMode;
use psirt_proto::{common, events, notification as api};
use psirt_testkit::jwt;
use psirt_testkit::{Backend, eventually};
use secrecy::SecretString;
use support::*;
use time::OffsetDateTime;
use tonic::Code;

/// A token of `roles` with these product scopes (none: no scope at all).
fn token(sub: &str, roles: &[&str], scopes: &[&str]) -> jwt::Token {
    jwt::Token::new(sub, roles).products(scopes)
}

fn with_token<T>(message: T, token: &jwt::Token) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", token.header());
    request
}

static NEXT_KEY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// The status's code and its message with `id` written as `<id>`.
fn shape(status: &tonic::Status, id: &str) -> (Code, String) {
    (status.code(), status.message().replace(id, "<id>"))
}

/// A case accepted with `products`, appended as triage would.
async fn accepted(h: &Harness, products: &[&str]) -> anyhow::Result<String> {
    let case = CaseId::for_report(ReportId::new());
    let id = case.to_string();
    let key = format!("PSIRT-2026-{:04}", NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let opened = events::CaseOpened {
        case_id: id.clone(),
        case_key: key.clone(),
        title: "Overflow".to_owned(),
        opened_at: ts(OffsetDateTime::now_utc()),
        ..Default::default()
    };
    h.case_event(case, "opened", &opened).await?;
    let accepted = events::CaseAccepted {
        case_id: id.clone(),
        case_key: key,
        severity: common::SeverityRating::High.into(),
        affected_products: products
            .iter()
            .map(|p| common::ProductVersionRange {
                product: (*p).to_owned(),
                versions: Some(common::product_version_range::Versions::Range(
                    "vers:semver/<2.0.0".to_owned(),
                )),
            })
            .collect(),
        note: String::new(),
        accepted_at: ts(OffsetDateTime::now_utc()),
    };
    h.case_event(case, "accepted", &accepted).await?;
    Ok(id)
}

type Client = psirt_proto::notification::notification_service_client::NotificationServiceClient<
    tonic::transport::Channel,
>;

/// Every delivery a caller lists, page by page (one a page): (case id, delivery id).
async fn deliveries(client: &Client, token: &jwt::Token) -> anyhow::Result<Vec<(String, String)>> {
    let mut client = client.clone();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = client
            .list_deliveries(with_token(
                api::ListDeliveriesRequest {
                    page_size: 1,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner();
        assert!(page.deliveries.len() <= 1, "page size holds");
        seen.extend(page.deliveries.into_iter().map(|d| (d.case_id, d.delivery_id)));
        if page.next_page_token.is_empty() {
            seen.sort();
            return Ok(seen);
        }
        page_token = page.next_page_token;
    }
    anyhow::bail!("the list did not end")
}

/// Every subscription a caller lists, page by page (one a page), by name.
async fn subscriptions(client: &Client, token: &jwt::Token) -> anyhow::Result<Vec<String>> {
    let mut client = client.clone();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = client
            .list_subscriptions(with_token(
                api::ListSubscriptionsRequest {
                    page_size: 1,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner();
        assert!(page.subscriptions.len() <= 1, "page size holds");
        seen.extend(page.subscriptions.into_iter().filter_map(|s| s.settings).map(|s| s.name));
        if page.next_page_token.is_empty() {
            seen.sort();
            return Ok(seen);
        }
        page_token = page.next_page_token;
    }
    anyhow::bail!("the list did not end")
}

#[tokio::test]
async fn a_scoped_principal_sees_only_deliveries_and_subscriptions_of_its_products() -> anyhow::Result<()> {
    let h = Harness::start_with(Backend::Sqlite, |config| {
        config.auth.mode = AuthMode::Jwt;
        config.auth.hs256_secret = Some(SecretString::from(jwt::SECRET.to_owned()));
        config.auth.issuer = Some(jwt::ISSUER.to_owned());
        config.auth.audience = Some(jwt::AUDIENCE.to_owned());
    })
    .await?;
    let receiver = Receiver::start(&[], 200).await?;
    let admin = token("ada", &["admin"], &[]);
    let star = token("sam", &["engineer"], &["*"]);
    let gateway = token("gil", &["analyst"], &["acme-gateway"]);
    let client = h.client().await?;

    let mut names = Vec::new();
    let mut subscription_ids = Vec::new();
    for (name, products) in
        [("all", vec![]), ("gateway", vec!["acme-gateway"]), ("switch", vec!["acme-switch"])]
    {
        let settings = events::SubscriptionSettings {
            products: products.iter().map(|p: &&str| (*p).to_owned()).collect(),
            ..webhook(name, &receiver.url())
        };
        let created = client
            .clone()
            .create_subscription(with_token(
                api::CreateSubscriptionRequest {
                    request_id: format!("sub-{name}"),
                    settings: Some(settings),
                },
                &admin,
            ))
            .await?
            .into_inner()
            .subscription
            .expect("subscription");
        subscription_ids.push(created.subscription_id.clone());
        names.push(created.settings.expect("settings").name);
    }
    names.sort();

    let a = accepted(&h, &["acme-gateway"]).await?;
    let b = accepted(&h, &["acme-switch"]).await?;
    let none = accepted(&h, &[]).await?;
    // "all" gets the three cases, "gateway" A's, "switch" B's.
    let all = eventually(DEADLINE, "five deliveries", || async {
        let all = deliveries(&client, &admin).await.ok()?;
        (all.len() == 5).then_some(all)
    })
    .await?;
    assert_eq!(deliveries(&client, &star).await?, all);
    let seen = deliveries(&client, &gateway).await?;
    assert_eq!(seen.len(), 2, "product A's deliveries only: {seen:?}");
    assert!(seen.iter().all(|(case, _)| *case == a));
    assert!(deliveries(&client, &token("nobody", &["engineer"], &[])).await?.is_empty(), "no claim: nothing");

    // Redelivery of B's (and the product-less case's) is refused as for a
    // missing delivery; of A's it is answered on its merits.
    let redeliver = |id: &str| api::RedeliverDeliveryRequest {
        delivery_id: id.to_owned(),
        request_id: format!("again-{id}"),
        ..Default::default()
    };
    let missing = DeliveryId::new().to_string();
    let absent = client
        .clone()
        .redeliver_delivery(with_token(redeliver(&missing), &gateway))
        .await
        .expect_err("missing");
    assert_eq!(absent.code(), Code::NotFound);
    for (case, delivery) in all.iter().filter(|(case, _)| *case == b || *case == none) {
        let hidden = client
            .clone()
            .redeliver_delivery(with_token(redeliver(delivery), &gateway))
            .await
            .expect_err(case);
        assert_eq!(shape(&hidden, delivery), shape(&absent, &missing));
    }
    let (_, of_a) = seen.first().expect("a delivery of A");
    if let Err(status) = client.clone().redeliver_delivery(with_token(redeliver(of_a), &gateway)).await {
        assert_ne!(status.code(), Code::NotFound, "A's delivery is known: {status:?}");
    }

    // Subscriptions: listed when their products filter names a product in
    // scope; one of every product only to `*` holders and admins.
    assert_eq!(subscriptions(&client, &gateway).await?, vec!["gateway".to_owned()]);
    assert_eq!(subscriptions(&client, &star).await?, names);
    assert_eq!(subscriptions(&client, &admin).await?, names);

    // Audit: the actor's scopes are recorded with the command's event.
    let id: psirt_domain::SubscriptionId = subscription_ids[0].parse()?;
    let created = h.store.load(&psirt_codec::notification::subscription_subject(id)).await?;
    let created = created.first().expect("created");
    assert_eq!(created.metadata.actor.as_deref(), Some("ada"));
    assert_eq!(created.metadata.actor_scopes.as_deref(), Some("*"), "admins hold every scope");
    Ok(())
}
