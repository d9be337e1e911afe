//! Which service owns which aggregate, and which event types an aggregate's
//! subject may carry.
//!
//! NATS permissions decide who may publish on `psirt.evt.<aggregate>.>`; this
//! table makes that mean something on the consuming side: an event whose
//! type does not belong to the aggregate of its subject is never applied
//! (the notification identity may publish on `psirt.evt.delivery.>`, but a
//! `CaseDisclosed` there is a forgery, not a disclosure). The server
//! configuration in `deploy/nats/` is checked against [`AGGREGATES`] by a
//! test, so the two cannot drift apart.

/// The package of every event message.
pub const EVENT_PACKAGE: &str = "psirt.events.v1";

/// One aggregate: its subject token, the service that writes it, and the
/// event types (message names in [`EVENT_PACKAGE`]) its subjects carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate {
    /// `report` in `psirt.evt.report.<id>`.
    pub name: &'static str,
    /// The service whose NATS identity may publish on the aggregate's subjects.
    pub owner: &'static str,
    /// Message names (without the package) of the events it carries.
    pub event_types: &'static [&'static str],
}

/// Every aggregate of the platform.
pub const AGGREGATES: &[Aggregate] = &[
    Aggregate {
        name: "report",
        owner: "intake",
        event_types: &["ReportReceived", "ReportAcknowledged", "ReporterMessageAdded", "DuplicateSuspected"],
    },
    Aggregate {
        name: "case",
        owner: "triage",
        event_types: &[
            "CaseOpened",
            "TriageStarted",
            "CaseAssigned",
            "SeverityAssessed",
            "AffectedProductsSet",
            "CaseAccepted",
            "CaseRejected",
            "CaseMarkedDuplicate",
            "DuplicateLinked",
            "CveAssigned",
            "EmbargoSet",
            "CaseEscalated",
            "SlaBreached",
            "RemediationStarted",
            "CaseFixed",
            "CaseDisclosed",
            "CaseClosed",
            "CaseReopened",
        ],
    },
    Aggregate {
        name: "remediation",
        owner: "remediation",
        event_types: &[
            "RemediationPlanOpened",
            "RemediationActionPlanned",
            "ReleaseRecorded",
            "ProductStatusSet",
            "RemediationVerified",
            "RemediationDueDatesRecomputed",
            // Remediation owns the deadlines of its actions and records
            // their breaches on the plan (docs/architecture.md).
            "SlaBreached",
        ],
    },
    Aggregate {
        name: "advisory",
        owner: "remediation",
        event_types: &["AdvisoryDrafted", "AdvisoryPublished", "AdvisoryRevised"],
    },
    Aggregate {
        name: "subscription",
        owner: "notification",
        event_types: &["SubscriptionCreated", "SubscriptionUpdated", "SubscriptionDeleted"],
    },
    Aggregate {
        name: "delivery",
        owner: "notification",
        event_types: &["DeliveryScheduled", "DeliveryAttempted", "DeliverySucceeded", "DeliveryDeadLettered"],
    },
    Aggregate {
        name: "ticket",
        owner: "notification",
        event_types: &["ExternalTicketLinked", "ExternalTicketUpdated"],
    },
];

/// The services that write events, each with the aggregates it owns.
pub fn owners() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for aggregate in AGGREGATES {
        match out.iter_mut().find(|(owner, _)| *owner == aggregate.owner) {
            Some((_, names)) => names.push(aggregate.name),
            None => out.push((aggregate.owner, vec![aggregate.name])),
        }
    }
    out
}

/// The aggregate token of an event subject (`psirt.evt.<aggregate>.<id>`).
pub fn aggregate_of(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix(crate::SUBJECT_PREFIX)?.strip_prefix('.')?;
    let (aggregate, id) = rest.split_once('.')?;
    (!aggregate.is_empty() && !id.is_empty()).then_some(aggregate)
}

/// A rule deciding whether an event of `event_type` may arrive on `subject`;
/// `Err` says why not.
pub type EventRule = fn(subject: &str, event_type: &str) -> Result<(), String>;

/// The platform's rule: the subject names a known aggregate and the event
/// type is one of that aggregate's.
pub fn check(subject: &str, event_type: &str) -> Result<(), String> {
    let Some(name) = aggregate_of(subject) else {
        return Err(format!("subject {subject:?} is not an aggregate subject (psirt.evt.<aggregate>.<id>)"));
    };
    let Some(aggregate) = AGGREGATES.iter().find(|a| a.name == name) else {
        return Err(format!("subject {subject:?} names no aggregate of the platform ({name:?})"));
    };
    let message = event_type.strip_prefix(EVENT_PACKAGE).and_then(|rest| rest.strip_prefix('.'));
    match message {
        Some(message) if aggregate.event_types.contains(&message) => Ok(()),
        _ => Err(format!(
            "event type {event_type:?} does not belong to the {name} aggregate of subject {subject:?} \
             (written by {}): foreign event, not applied",
            aggregate.owner
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregates_own_event_types_are_accepted() {
        assert_eq!(check("psirt.evt.case.0190", "psirt.events.v1.CaseDisclosed"), Ok(()));
        assert_eq!(check("psirt.evt.remediation.x", "psirt.events.v1.SlaBreached"), Ok(()));
        assert_eq!(check("psirt.evt.ticket.x", "psirt.events.v1.ExternalTicketUpdated"), Ok(()));
    }

    #[test]
    fn a_type_of_another_aggregate_is_refused() {
        let err = check("psirt.evt.delivery.x", "psirt.events.v1.CaseDisclosed").unwrap_err();
        assert!(err.contains("delivery") && err.contains("CaseDisclosed"), "{err}");
        assert!(check("psirt.evt.report.x", "psirt.events.v1.AdvisoryPublished").is_err());
        assert!(check("psirt.evt.case.x", "psirt.events.v2.CaseDisclosed").is_err());
        assert!(check("psirt.evt.case.x", "CaseDisclosed").is_err());
        assert!(check("psirt.evt.case.x", "").is_err());
    }

    #[test]
    fn subjects_outside_the_aggregates_are_refused() {
        assert!(check("psirt.evt.thing.x", "psirt.events.v1.CaseOpened").is_err());
        assert!(check("psirt.evt.case", "psirt.events.v1.CaseOpened").is_err());
        assert!(check("psirt.evt.case.", "psirt.events.v1.CaseOpened").is_err());
        assert!(check("other.case.x", "psirt.events.v1.CaseOpened").is_err());
    }

    #[test]
    fn every_aggregate_has_one_entry_and_types_are_unique_within_it() {
        for (i, a) in AGGREGATES.iter().enumerate() {
            assert!(AGGREGATES[i + 1..].iter().all(|b| b.name != a.name), "{} twice", a.name);
            for (j, t) in a.event_types.iter().enumerate() {
                assert!(!a.event_types[j + 1..].contains(t), "{t} twice in {}", a.name);
            }
        }
        let owners = owners();
        assert_eq!(
            owners.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            ["intake", "triage", "remediation", "notification"]
        );
    }
}
