//! The PSIRT domain: reports, cases and their rules, as pure decide/evolve
//! aggregates. No IO, no clock (the time is passed in), no async: the
//! services load events, call `handle`, and append what it returns.

pub mod advisory;
pub mod aggregate;
pub mod case;
pub mod case_key;
pub mod cvss_vector;
pub mod dedup;
pub mod ids;
pub mod notification;
pub mod remediation;
pub mod report;
pub mod scope;
pub mod sla;
pub mod ssvc;
pub mod template;
pub mod validation;
pub mod vers;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use advisory::{
    Acknowledgment, Advisory, AdvisoryCommand, AdvisoryContent, AdvisoryDetails, AdvisoryError,
    AdvisoryEvent, AdvisoryFormat, AdvisoryVersion, InvalidAdvisoryVersion, Publication, Revision,
};
pub use aggregate::{Aggregate, DomainEvent};
pub use case::{
    AffectedProduct, Case, CaseCommand, CaseDetails, CaseError, CaseEvent, CaseStatus, Closure, CveId,
    CvssScore, DuplicateHint, DuplicateMatch, Embargo, EmbargoTerms, Escalation, EscalationLevel,
    InvalidCveId, InvalidTransition, LinkedDuplicate, Rejection, RejectionReason, Resolution, Severity,
    SeverityEvidence, SlaBreach, SlaClock, SlaDeadline, VersionSpec, check_time_zone,
};
pub use case_key::{CaseKey, CaseKeyError};
pub use cvss_vector::{CvssError, CvssNomenclature, CvssSeverity, CvssVector, CvssVersion, UnknownSeverity};
pub use dedup::{DUPLICATE_WINDOW, dedup_keys, normalise_title};
pub use ids::{
    ActionId, AdvisoryId, CaseId, DeliveryId, EventId, InvalidId, InvalidIdReason, LinkId, MessageId, PlanId,
    ReportId, SubscriptionId,
};
pub use notification::{
    AttemptKind, AttemptResult, CaseFacts, Delivery, DeliveryCommand, DeliveryError, DeliveryEvent,
    DeliveryStatus, EventFacts, Exposure, RetryPolicy, Subscription, SubscriptionCommand, SubscriptionError,
    SubscriptionEvent, SubscriptionSettings,
};
pub use remediation::{
    DueDateChange, OverdueAction, Plan, PlanCommand, PlanDetails, PlanError, PlanEvent, PlanSummary,
    PlannedAction, ProductStatus, ProductVersionStatus, ProductWindows, Release, RemediationAction,
    RemediationPolicy, Verification, VexJustification,
};
pub use report::{
    Channel, MessageDirection, Report, ReportCommand, ReportDetails, ReportError, ReportEvent, ReportStatus,
    Reporter, ReporterMessage, SubmitReport, SuspectedDuplicate,
};
pub use scope::Scopes;
pub use sla::{
    Clock, ClockState, ClockStatus, SeverityClocks, SlaClocks, SlaDuration, SlaDurationError, SlaPolicy,
    SlaState,
};
pub use ssvc::{
    Automatable, Exploitation, PublicSafetyImpact, SsvcDecision, SsvcInputs, TechnicalImpact,
    UnknownSsvcValue, Utility, ValueDensity,
};
pub use validation::{FieldViolation, check_email, validate_submission};
