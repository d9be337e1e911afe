//! What e-mails and tracker tickets say about an event: the template values
//! of a delivery, redacted like a webhook's body for an untrusted
//! destination until the case is disclosed (id, key, status and link only).

use psirt_domain::CaseFacts;
use psirt_domain::template::Values;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The short name of a fully-qualified event type (`CaseAccepted`).
pub fn short_type(event_type: &str) -> &str {
    event_type.rsplit('.').next().unwrap_or(event_type)
}

/// One sentence for an event type: `CaseAccepted` → `Case accepted`.
pub fn summary(event_type: &str) -> String {
    let mut out = String::new();
    for (i, c) in short_type(event_type).chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out.split(' ')
        .map(|w| match w.to_ascii_lowercase().as_str() {
            "sla" => "SLA".to_owned(),
            "cve" => "CVE".to_owned(),
            _ => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The title a redacted notice shows.
pub const REDACTED_TITLE: &str = "(undisclosed)";

/// What a delivery is about.
pub struct Subject<'a> {
    pub case_id: &'a str,
    pub facts: &'a CaseFacts,
    pub event_type: &'a str,
    pub event_id: &'a str,
    pub event_time: OffsetDateTime,
    pub delivery_id: &'a str,
    /// Leave out everything but the case id, key, status and link.
    pub redacted: bool,
    /// The link to the case for people who may look; empty: none.
    pub link: &'a str,
}

/// The template values of a delivery.
pub fn values(s: &Subject<'_>) -> Values {
    let f = s.facts;
    let status = f.status.map(|st| st.to_string()).unwrap_or_default();
    let v = Values::default()
        .with("case.id", s.case_id)
        .with("case.key", f.case_key.clone().unwrap_or_default())
        .with("case.status", status)
        .with("case.embargoed", if f.embargoed { "true" } else { "false" })
        .with("event.type", short_type(s.event_type))
        .with("event.id", s.event_id)
        .with("event.time", s.event_time.format(&Rfc3339).unwrap_or_default())
        .with("event.summary", summary(s.event_type))
        .with("delivery.id", s.delivery_id)
        .with("case.link", s.link);
    if s.redacted {
        return v.with("case.title", REDACTED_TITLE);
    }
    v.with("case.title", f.title.clone().unwrap_or_default())
        .with("case.severity", f.severity.map(|s| s.to_string()).unwrap_or_default())
        .with("case.products", f.products.join(", "))
        .with("case.cves", f.cve_ids.join(", "))
}

#[cfg(test)]
mod tests {
    use psirt_domain::{CaseStatus, CvssSeverity};

    use super::*;

    fn facts() -> CaseFacts {
        CaseFacts {
            case_key: Some("PSIRT-2026-0007".to_owned()),
            title: Some("Heap overflow".to_owned()),
            cve_ids: vec!["CVE-2026-1234".to_owned()],
            severity: Some(CvssSeverity::High),
            products: vec!["router".to_owned(), "switch".to_owned()],
            status: Some(CaseStatus::Accepted),
            embargoed: true,
            disclosed: false,
        }
    }

    fn subject(facts: &CaseFacts, redacted: bool) -> Subject<'_> {
        Subject {
            case_id: "c1",
            facts,
            event_type: "psirt.events.v1.CaseAccepted",
            event_id: "e1",
            event_time: OffsetDateTime::UNIX_EPOCH,
            delivery_id: "d1",
            redacted,
            link: "https://psirt.example.com/cases/PSIRT-2026-0007",
        }
    }

    #[test]
    fn summaries_read_as_sentences() {
        assert_eq!(summary("psirt.events.v1.CaseAccepted"), "Case accepted");
        assert_eq!(summary("psirt.events.v1.SlaBreached"), "SLA breached");
        assert_eq!(summary("psirt.events.v1.CveAssigned"), "CVE assigned");
    }

    #[test]
    fn values_carry_the_case_and_the_event() {
        let f = facts();
        let v = values(&subject(&f, false));
        assert_eq!(v.get("case.key"), Some("PSIRT-2026-0007"));
        assert_eq!(v.get("case.title"), Some("Heap overflow"));
        assert_eq!(v.get("case.products"), Some("router, switch"));
        assert_eq!(v.get("case.cves"), Some("CVE-2026-1234"));
        assert_eq!(v.get("case.status"), Some("accepted"));
        assert_eq!(v.get("event.type"), Some("CaseAccepted"));
        assert_eq!(v.get("event.time"), Some("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn redacted_values_keep_only_id_key_and_status() {
        let f = facts();
        let v = values(&subject(&f, true));
        assert_eq!(v.get("case.key"), Some("PSIRT-2026-0007"));
        assert_eq!(v.get("case.status"), Some("accepted"));
        assert_eq!(v.get("case.title"), Some(REDACTED_TITLE));
        assert_eq!(v.get("case.link"), Some("https://psirt.example.com/cases/PSIRT-2026-0007"));
        for hidden in ["case.products", "case.cves", "case.severity"] {
            assert_eq!(v.get(hidden), Some(""), "{hidden}");
        }
    }
}
