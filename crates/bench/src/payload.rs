//! The report every benchmark call submits (title ~60 characters, ~1 KiB
//! description, two products, a CVSS 3.1 vector, channel API), encoded once
//! per run, and the `ReportReceived` event it becomes, for the raw run.

use bytes::{BufMut, Bytes};
use prost::Message;
use psirt_proto::{common, events, intake};
use uuid::Uuid;

/// Title of every report; the run and call numbers follow it, so no two
/// calls share a normalised title and no duplicate hint fires.
pub const TITLE_PREFIX: &str = "Stored XSS in acme-portal report export #";

/// The products every report names.
pub const PRODUCTS: [&str; 2] = ["acme-portal 4.2", "pkg:cargo/acme-export@1.7.3"];

/// The CVSS vector every report suggests.
pub const CVSS_VECTOR: &str = "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N";

/// The principal the intake service sees with `auth.mode = "none"`.
pub const ACTOR: &str = "anonymous";

/// A reporter's description as they arrive: Markdown, steps, impact; 1 KiB.
pub const DESCRIPTION: &str = "\
## Summary\n\
The CSV export of the acme-portal report list does not escape the report title. A user \
who can create reports stores a title containing an HTML payload; when an administrator \
opens the export preview, the payload runs in the administrator's session.\n\
\n\
## Affected\n\
acme-portal 4.2.0 to 4.2.3 (export module acme-export 1.7.x). Earlier versions were not \
tested.\n\
\n\
## Steps to reproduce\n\
1. Log in as a user with the reporter role.\n\
2. Create a report with the title `<img src=x onerror=alert(document.domain)>`.\n\
3. Log in as an administrator and open Reports > Export > Preview.\n\
4. The alert box shows the portal's domain.\n\
\n\
## Impact\n\
Session riding as an administrator: creating users, changing roles, reading every report. \
The session cookie is HttpOnly, so it cannot be read directly. Every administrator who \
opens an export preview is exposed.\n\
\n\
## Suggested fix\n\
Escape titles in the preview template and send a Content-Security-Policy without \
unsafe-inline. We have not published this and ask for coordinated disclosure within \
90 days.\n";

/// Width of the task number in request ids and titles.
const TASK_DIGITS: usize = 4;
/// Width of the call sequence in request ids and titles.
const SEQ_DIGITS: usize = 10;
/// Width of the run id in titles.
const RUN_DIGITS: usize = 8;

/// The largest task number the fixed-width ids can hold.
pub const MAX_TASK: u32 = 9_999;

/// Protobuf keys of fields 1 and 2 (length-delimited).
const KEY_REQUEST_ID: u8 = (1 << 3) | 2;
const KEY_TITLE: u8 = (2 << 3) | 2;

/// The `SubmitReportRequest` of one run, ready to be stamped per call.
///
/// Only the request id and the title differ between calls: the other fields
/// are encoded once and copied, and the per-call fields are written with a
/// fixed width, so a call costs no allocation and no protobuf encoding.
#[derive(Debug)]
pub struct SubmitTemplate {
    /// `bench-<run>-`: a new run never replays an earlier run's request id
    /// against a long-lived service.
    id_prefix: String,
    /// [`TITLE_PREFIX`] and the first digits of the run id.
    title_prefix: String,
    /// Fields 3 to 9, encoded once. Proto3 leaves the empty fields 1 and 2
    /// out, and field order does not matter on the wire.
    rest: Bytes,
}

impl SubmitTemplate {
    pub fn new(run: Uuid) -> Self {
        let run = run.simple().to_string();
        let rest = Self::base_request().encode_to_vec();
        Self {
            id_prefix: format!("bench-{run}-"),
            title_prefix: format!("{TITLE_PREFIX}{}-", &run[..RUN_DIGITS]),
            rest: Bytes::from(rest),
        }
    }

    /// Everything but the request id and title.
    fn base_request() -> intake::SubmitReportRequest {
        intake::SubmitReportRequest {
            description: DESCRIPTION.to_owned(),
            reporter: Some(common::Reporter {
                name: "Dana Reporter".to_owned(),
                email: "dana.reporter@example.org".to_owned(),
                organization: "Example Security Research".to_owned(),
            }),
            channel: common::ReportChannel::Api.into(),
            affected_products: PRODUCTS.iter().map(|p| (*p).to_owned()).collect(),
            suggested_cvss_vector: CVSS_VECTOR.to_owned(),
            ..Default::default()
        }
    }

    fn request_id_len(&self) -> usize {
        self.id_prefix.len() + TASK_DIGITS + 1 + SEQ_DIGITS
    }

    fn title_len(&self) -> usize {
        self.title_prefix.len() + TASK_DIGITS + 1 + SEQ_DIGITS
    }

    /// Length of one encoded call; the same for every call.
    pub fn encoded_len(&self) -> usize {
        let field = |len: usize| 1 + prost::length_delimiter_len(len) + len;
        field(self.request_id_len()) + field(self.title_len()) + self.rest.len()
    }

    /// Writes the request of call `seq` of task `task`. Numbers wider than
    /// their fields wrap around (10^10 calls per task are far away).
    pub fn encode(&self, task: u32, seq: u64, buf: &mut impl BufMut) {
        buf.put_u8(KEY_REQUEST_ID);
        put_varint(buf, self.request_id_len() as u64);
        buf.put_slice(self.id_prefix.as_bytes());
        put_call(buf, task, seq);
        buf.put_u8(KEY_TITLE);
        put_varint(buf, self.title_len() as u64);
        buf.put_slice(self.title_prefix.as_bytes());
        put_call(buf, task, seq);
        buf.put_slice(&self.rest);
    }

    /// The same request as a message (for checks and the raw run's event).
    pub fn request(&self, task: u32, seq: u64) -> intake::SubmitReportRequest {
        let mut call = Vec::with_capacity(TASK_DIGITS + 1 + SEQ_DIGITS);
        put_call(&mut call, task, seq);
        let call = String::from_utf8_lossy(&call);
        intake::SubmitReportRequest {
            request_id: format!("{}{call}", self.id_prefix),
            title: format!("{}{call}", self.title_prefix),
            ..Self::base_request()
        }
    }

    /// The encoded `ReportReceived` event the intake appends for call `seq`
    /// of task `task`: the raw run publishes it, so both runs store the same
    /// bytes.
    pub fn event_payload(&self, task: u32, seq: u64) -> Bytes {
        let request = self.request(task, seq);
        let mut event = events::ReportReceived {
            report_id: Uuid::now_v7().to_string(),
            case_id: Uuid::now_v7().to_string(),
            request_id: request.request_id,
            title: request.title,
            description: request.description,
            reporter: request.reporter,
            channel: request.channel,
            affected_products: request.affected_products,
            suggested_cvss_vector: request.suggested_cvss_vector,
            requested_disclosure_at: None,
            received_at: Some(Default::default()),
            external_reference: String::new(),
        };
        // A real receive time has both parts set, which sizes the field as
        // the intake's does.
        if let Some(at) = event.received_at.as_mut() {
            let now = time::OffsetDateTime::now_utc();
            at.seconds = now.unix_timestamp();
            at.nanos = i32::try_from(now.nanosecond()).unwrap_or(0);
        }
        Bytes::from(event.encode_to_vec())
    }
}

/// Writes `<task>-<seq>` zero-padded to fixed widths.
fn put_call(buf: &mut impl BufMut, task: u32, seq: u64) {
    put_digits(buf, u64::from(task), TASK_DIGITS);
    buf.put_u8(b'-');
    put_digits(buf, seq, SEQ_DIGITS);
}

/// Writes the last `width` decimal digits of `value`, zero-padded.
fn put_digits(buf: &mut impl BufMut, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let width = width.min(digits.len());
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    buf.put_slice(&digits[..width]);
}

fn put_varint(buf: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8(((value & 0x7f) as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> SubmitTemplate {
        SubmitTemplate::new(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef))
    }

    #[test]
    fn stamped_encoding_decodes_as_the_full_request() {
        let t = template();
        for (task, seq) in [(0, 0), (7, 42), (MAX_TASK, 9_999_999_999)] {
            let mut buf = Vec::new();
            t.encode(task, seq, &mut buf);
            assert_eq!(buf.len(), t.encoded_len());
            let decoded = intake::SubmitReportRequest::decode(buf.as_slice()).unwrap();
            assert_eq!(decoded, t.request(task, seq));
        }
        let r = t.request(7, 42);
        assert_eq!(r.request_id, "bench-0123456789abcdef0123456789abcdef-0007-0000000042");
        assert_eq!(r.title, "Stored XSS in acme-portal report export #01234567-0007-0000000042");
    }

    #[test]
    fn the_request_has_the_advertised_shape() {
        let r = template().request(1, 1);
        assert!((55..=70).contains(&r.title.chars().count()), "{}", r.title.len());
        assert!((1000..=1100).contains(&r.description.len()), "{}", r.description.len());
        assert!(r.request_id.len() <= 128);
        assert!(r.request_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)));
        assert_eq!(r.affected_products.len(), 2);
        assert_eq!(r.channel, i32::from(common::ReportChannel::Api));
    }

    #[test]
    fn calls_differ_in_id_and_title() {
        let t = template();
        let (a, b) = (t.request(1, 2), t.request(2, 1));
        assert_ne!(a.request_id, b.request_id);
        assert_ne!(a.title, b.title);
    }

    #[test]
    fn event_payload_is_the_size_of_the_intakes_event() {
        // The 1 KiB description plus ids, title, reporter, products, vector.
        let len = template().event_payload(0, 0).len();
        assert!((1300..=1500).contains(&len), "{len}");
    }

    #[test]
    fn digits_wrap_at_their_width() {
        let mut buf = Vec::new();
        put_digits(&mut buf, 123_456, 4);
        assert_eq!(buf, b"3456");
    }
}
