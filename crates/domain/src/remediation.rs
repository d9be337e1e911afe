//! The remediation plan of a case (ISO/IEC 30111 remediation, FIRST PSIRT
//! Services Framework service area 4): per affected product, what is done
//! (fix, workaround, mitigation, suspension, nothing), by whom, by when; the
//! releases that carry fixes; the VEX status of each product version; and
//! which due dates were missed.
//!
//! A case has exactly one plan ([`PlanId::for_case`]), opened when the case
//! is accepted; every command after `Open` carries nothing about the case.
//!
//! Due dates come from the [`RemediationPolicy`] the plan decides under:
//! `opened_at` of the plan plus the policy's window for the plan's severity
//! and the action's product, unless an action overrides its due date with a
//! reason. `RecomputeDueDates` moves every due date that is not overridden
//! (also of actions already done, so that compliance is measured against the
//! commitment of the real severity, as the case SLA clocks do).
//!
//! An action's clock stops when it is released (a `ReleaseRecorded` naming
//! the action, or, for a FIX, any release of the action's product) or
//! verified. A deadline passed without that is overdue until an
//! `SlaBreached` for that action and that exact deadline is applied; a
//! moved due date is a new deadline that can breach again, once.
//!
//! Checks run in the order `Case` uses: the plan exists, the input is valid
//! (every violation at once), and only then whether the command would change
//! anything (a command that would not is a no-op: no events, no error).

mod policy;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use self::policy::{MAX_POLICY_LABEL_CHARS, ProductWindows, RemediationPolicy};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::case::{AffectedProduct, VersionSpec};
use crate::case_key::CaseKey;
use crate::cvss_vector::CvssSeverity;
use crate::ids::{ActionId, CaseId, PlanId};
use crate::validation::{
    self, FieldViolation, MAX_AFFECTED_PRODUCTS, MAX_PRODUCT_NAME_CHARS, Text, check_name, check_text,
    present,
};
use crate::vers;

/// Most actions one plan may hold (a recomputation lists at most this many changes).
pub const MAX_ACTIONS: usize = 100;
/// Most releases one plan may record.
pub const MAX_RELEASES: usize = 1000;
/// Most product versions one plan may hold a VEX status for.
pub const MAX_PRODUCT_STATUSES: usize = 1000;
/// Longest version range expression (`vers:semver/>=2.0.0|<2.4.1`): the one
/// limit of [`vers::MAX_VERS_CHARS`].
pub const MAX_RANGE_CHARS: usize = vers::MAX_VERS_CHARS;
/// Most versions an explicit list may hold.
pub const MAX_LISTED_VERSIONS: usize = 100;
/// Longest single version (`target_release`, `fixed_version`, a listed version).
pub const MAX_VERSION_CHARS: usize = 100;
/// Longest version or range a product status is set for.
pub const MAX_STATUS_VERSION_CHARS: usize = vers::MAX_VERS_CHARS;
/// Longest reason (due date override, recomputation).
pub const MAX_REASON_CHARS: usize = 1000;
/// Longest URL (release notes, references, credits).
pub const MAX_URL_CHARS: usize = 2048;

/// What is done about a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationAction {
    /// A fixed release (patch, update).
    Fix,
    /// A configuration or usage change customers can apply themselves.
    Workaround,
    /// A measure that reduces the risk without removing the vulnerability.
    Mitigation,
    /// Suspending the product or service (or a feature) until fixed.
    Suspend,
    /// No action (end of life, risk accepted): the description says why.
    None,
}

/// The VEX status of a product version (CSAF 2.0 product status, OpenVEX status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    KnownAffected,
    /// Needs a [`VexJustification`].
    KnownNotAffected,
    Fixed,
    UnderInvestigation,
}

/// Why a product version is not affected (CSAF 2.0 flag labels, OpenVEX justifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexJustification {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeCannotBeControlledByAdversary,
    InlineMitigationsAlreadyExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCommand {
    /// Opens the plan of an accepted case; opening it again is a no-op
    /// (the reaction to `CaseAccepted` may be redelivered).
    Open {
        case_id: CaseId,
        case_key: CaseKey,
        severity: Option<CvssSeverity>,
        products: Vec<AffectedProduct>,
    },
    /// Plans an action, or re-plans it (same `action_id`: replaces it).
    PlanAction {
        action_id: ActionId,
        /// Must be one of the plan's affected products (matched without case).
        target: AffectedProduct,
        action: RemediationAction,
        owner_team: String,
        /// Blank: not known (or not a fix).
        target_release: String,
        /// A due date other than the policy's, and why (the reason is required).
        due_override: Option<(OffsetDateTime, String)>,
        description: String,
    },
    /// A release carrying a fix shipped; `action_id` ties it to an action.
    RecordRelease {
        action_id: Option<ActionId>,
        product: String,
        fixed_version: String,
        released_at: OffsetDateTime,
        /// Blank: none; otherwise an https URL.
        release_notes_url: String,
    },
    /// Sets (replaces) the VEX status of a product version.
    SetProductStatus {
        product: String,
        /// A version or a range expression.
        version: String,
        status: ProductStatus,
        /// Required for `KnownNotAffected`, refused otherwise.
        justification: Option<VexJustification>,
        statement: String,
    },
    /// The action was tested and works; verifying it again is a no-op.
    Verify { action_id: ActionId, note: String },
    /// Recomputes the due dates that follow the policy, for a new severity
    /// (or a new policy). A no-op when no due date moves and the severity and
    /// policy label are the ones recorded; a new severity or label alone is
    /// recorded (with no changes) because actions planned later follow it.
    RecomputeDueDates { severity: Option<CvssSeverity>, reason: String },
}

/// One due date moved by a recomputation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueDateChange {
    pub action_id: ActionId,
    #[serde(with = "time::serde::rfc3339")]
    pub previous_due_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
}

/// Facts about a remediation plan; the names are the protobuf message names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PlanEvent {
    RemediationPlanOpened {
        plan_id: PlanId,
        case_id: CaseId,
        case_key: CaseKey,
        /// `None`: not rated.
        severity: Option<CvssSeverity>,
        /// The policy label, e.g. `default@1`.
        sla_policy: String,
        affected_products: Vec<AffectedProduct>,
        #[serde(with = "time::serde::rfc3339")]
        opened_at: OffsetDateTime,
    },
    RemediationActionPlanned {
        plan_id: PlanId,
        case_id: CaseId,
        action_id: ActionId,
        /// With the plan's spelling of the product.
        target: AffectedProduct,
        action: RemediationAction,
        owner_team: String,
        target_release: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        due_at: OffsetDateTime,
        /// Set exactly when `due_at` does not follow the policy.
        due_date_override_reason: Option<String>,
        description: String,
        #[serde(with = "time::serde::rfc3339")]
        planned_at: OffsetDateTime,
    },
    ReleaseRecorded {
        plan_id: PlanId,
        case_id: CaseId,
        action_id: Option<ActionId>,
        /// With the plan's spelling of the product.
        product: String,
        fixed_version: String,
        #[serde(with = "time::serde::rfc3339")]
        released_at: OffsetDateTime,
        release_notes_url: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        recorded_at: OffsetDateTime,
    },
    ProductStatusSet {
        plan_id: PlanId,
        case_id: CaseId,
        /// With the plan's spelling of the product.
        product: String,
        version: String,
        status: ProductStatus,
        justification: Option<VexJustification>,
        statement: String,
        #[serde(with = "time::serde::rfc3339")]
        set_at: OffsetDateTime,
    },
    RemediationVerified {
        plan_id: PlanId,
        case_id: CaseId,
        action_id: ActionId,
        verification_note: String,
        #[serde(with = "time::serde::rfc3339")]
        verified_at: OffsetDateTime,
    },
    RemediationDueDatesRecomputed {
        plan_id: PlanId,
        case_id: CaseId,
        severity: Option<CvssSeverity>,
        sla_policy: String,
        /// Only the due dates that moved; overridden ones never do.
        changes: Vec<DueDateChange>,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        recomputed_at: OffsetDateTime,
    },
    /// The case's `SlaBreached` of clock REMEDIATION, applied to the plan so
    /// that it knows which deadlines already breached. The plan never decides it.
    SlaBreached {
        case_id: CaseId,
        action_id: ActionId,
        product: String,
        #[serde(with = "time::serde::rfc3339")]
        deadline: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        breached_at: OffsetDateTime,
        severity: Option<CvssSeverity>,
        sla_policy: String,
    },
}

impl DomainEvent for PlanEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::RemediationPlanOpened { .. } => "RemediationPlanOpened",
            Self::RemediationActionPlanned { .. } => "RemediationActionPlanned",
            Self::ReleaseRecorded { .. } => "ReleaseRecorded",
            Self::ProductStatusSet { .. } => "ProductStatusSet",
            Self::RemediationVerified { .. } => "RemediationVerified",
            Self::RemediationDueDatesRecomputed { .. } => "RemediationDueDatesRecomputed",
            Self::SlaBreached { .. } => "SlaBreached",
        }
    }
}

impl PlanEvent {
    /// The case the plan remediates.
    pub fn case_id(&self) -> CaseId {
        match self {
            Self::RemediationPlanOpened { case_id, .. }
            | Self::RemediationActionPlanned { case_id, .. }
            | Self::ReleaseRecorded { case_id, .. }
            | Self::ProductStatusSet { case_id, .. }
            | Self::RemediationVerified { case_id, .. }
            | Self::RemediationDueDatesRecomputed { case_id, .. }
            | Self::SlaBreached { case_id, .. } => *case_id,
        }
    }

    /// When the event was decided (not a date it carries as data).
    pub fn at(&self) -> OffsetDateTime {
        match self {
            Self::RemediationPlanOpened { opened_at: at, .. }
            | Self::RemediationActionPlanned { planned_at: at, .. }
            | Self::ReleaseRecorded { recorded_at: at, .. }
            | Self::ProductStatusSet { set_at: at, .. }
            | Self::RemediationVerified { verified_at: at, .. }
            | Self::RemediationDueDatesRecomputed { recomputed_at: at, .. }
            | Self::SlaBreached { breached_at: at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The plan was not opened (NOT_FOUND).
    #[error("no such remediation plan")]
    NotFound,
    /// No action with this id in the plan (NOT_FOUND).
    #[error("remediation plan {plan_id} has no action {action_id}")]
    ActionNotFound { plan_id: PlanId, action_id: ActionId },
    /// Bad input (INVALID_ARGUMENT), every problem at once.
    #[error("invalid remediation command: {}", validation::join(.0))]
    Validation(Vec<FieldViolation>),
}

/// A planned action as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAction {
    pub action_id: ActionId,
    pub target: AffectedProduct,
    pub action: RemediationAction,
    pub owner_team: String,
    pub target_release: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    /// Set when the due date was overridden: it then never follows the policy.
    pub due_date_override_reason: Option<String>,
    pub description: String,
    #[serde(with = "time::serde::rfc3339")]
    pub planned_at: OffsetDateTime,
    /// Kept when the action is re-planned as the same kind for the same
    /// product (a new due date, owner or description); dropped otherwise.
    pub verification: Option<Verification>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub note: String,
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub action_id: Option<ActionId>,
    pub product: String,
    pub fixed_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub released_at: OffsetDateTime,
    pub release_notes_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

/// The VEX status of one product version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductVersionStatus {
    pub product: String,
    pub version: String,
    pub status: ProductStatus,
    pub justification: Option<VexJustification>,
    pub statement: String,
    #[serde(with = "time::serde::rfc3339")]
    pub set_at: OffsetDateTime,
}

/// A deadline that passed with the action neither released nor verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueAction {
    pub action_id: ActionId,
    pub product: String,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
}

/// The plan in numbers, for the case view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub actions: usize,
    /// Neither released nor verified.
    pub open: usize,
    /// Released (whether verified or not).
    pub released: usize,
    /// Verified (whether released or not).
    pub verified: usize,
    /// Open and past the due date at the time asked (breach recorded or not).
    pub overdue: usize,
    /// Every affected product (plan spelling), with the VEX statuses set for
    /// its versions; an empty list for a product without any.
    pub product_statuses: BTreeMap<String, Vec<(String, ProductStatus)>>,
}

/// Everything known about an opened plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDetails {
    pub id: PlanId,
    pub case_id: CaseId,
    pub case_key: CaseKey,
    /// The severity the due dates follow; `None`: not rated.
    pub severity: Option<CvssSeverity>,
    /// The label of the policy the due dates last followed.
    pub sla_policy: String,
    pub affected_products: Vec<AffectedProduct>,
    /// In the order first planned.
    pub actions: Vec<PlannedAction>,
    /// In the order recorded.
    pub releases: Vec<Release>,
    /// One per product and version, in the order first set.
    pub product_statuses: Vec<ProductVersionStatus>,
    /// The (action, deadline) pairs already breached.
    pub breaches: Vec<(ActionId, OffsetDateTime)>,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// The latest event's time (never moves back).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl PlanDetails {
    pub fn action(&self, action_id: ActionId) -> Option<&PlannedAction> {
        self.actions.iter().find(|action| action.action_id == action_id)
    }

    /// The plan's spelling of `product`, matched without case.
    pub fn product(&self, product: &str) -> Option<&str> {
        let wanted = product.trim().to_lowercase();
        self.affected_products
            .iter()
            .map(|entry| entry.product.as_str())
            .find(|name| name.to_lowercase() == wanted)
    }

    /// Released: a release names the action, or, for a FIX, a release of its product shipped.
    pub fn is_released(&self, action: &PlannedAction) -> bool {
        self.releases.iter().any(|release| {
            release.action_id == Some(action.action_id)
                || (action.action == RemediationAction::Fix
                    && same_product(&release.product, &action.target.product))
        })
    }

    /// Released or verified, or nothing left to do because every version
    /// of its product is known not affected or fixed: the action's clock
    /// has stopped.
    pub fn is_done(&self, action: &PlannedAction) -> bool {
        action.verification.is_some() || self.is_released(action) || self.is_settled(&action.target.product)
    }

    /// Whether `product` has a status and every status it has is
    /// known-not-affected or fixed ([`is_product_settled`]).
    pub fn is_settled(&self, product: &str) -> bool {
        is_product_settled(
            product,
            self.product_statuses.iter().map(|s| (s.product.as_str(), Some(s.status))),
        )
    }

    fn is_breached(&self, action: &PlannedAction) -> bool {
        self.breaches.contains(&(action.action_id, action.due_at))
    }

    /// The affected products with no VEX status for any version, in plan order.
    pub fn unresolved_products(&self) -> Vec<String> {
        self.affected_products
            .iter()
            .filter(|entry| !self.product_statuses.iter().any(|s| same_product(&s.product, &entry.product)))
            .map(|entry| entry.product.clone())
            .collect()
    }
}

/// Whether two product names name the same product: case and the spaces
/// around them do not count. Every fold of a plan (this aggregate, the
/// remediation service's plan view, triage's plan summary) compares with it.
pub fn same_product(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// The "settled" rule, the one every fold of a plan applies: `product` has
/// at least one status among `statuses` (product, status; `None` for a
/// status this build does not know), and each of its statuses is
/// known-not-affected or fixed. An action on a settled product has nothing
/// left to do.
pub fn is_product_settled<'a>(
    product: &str,
    statuses: impl IntoIterator<Item = (&'a str, Option<ProductStatus>)>,
) -> bool {
    let mut any = false;
    for (name, status) in statuses {
        if same_product(name, product) {
            if !matches!(status, Some(ProductStatus::KnownNotAffected | ProductStatus::Fixed)) {
                return false;
            }
            any = true;
        }
    }
    any
}

/// The remediation plan aggregate. `Default` is a plan not yet opened,
/// deciding under the default policy; [`Plan::with_policy`] gives another.
/// The policy is configuration, not state: it is not part of the events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    details: Option<PlanDetails>,
    policy: RemediationPolicy,
    version: u64,
}

impl Plan {
    /// A plan not yet opened that decides due dates under `policy`; apply
    /// the history to it.
    pub fn with_policy(policy: RemediationPolicy) -> Self {
        Self { details: None, policy, version: 0 }
    }

    /// Decides from now on under `policy`.
    pub fn set_policy(&mut self, policy: RemediationPolicy) {
        self.policy = policy;
    }

    pub fn policy(&self) -> &RemediationPolicy {
        &self.policy
    }

    /// `None` until the plan is opened.
    pub fn details(&self) -> Option<&PlanDetails> {
        self.details.as_ref()
    }

    pub fn exists(&self) -> bool {
        self.details.is_some()
    }

    /// How many events have been applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The actions whose due date passed by `now` (inclusive), neither
    /// released nor verified, and not yet breached for that due date;
    /// earliest first.
    pub fn overdue_actions(&self, now: OffsetDateTime) -> Vec<OverdueAction> {
        let Some(plan) = &self.details else { return Vec::new() };
        let mut overdue: Vec<OverdueAction> = plan
            .actions
            .iter()
            .filter(|action| action.due_at <= now && !plan.is_done(action) && !plan.is_breached(action))
            .map(|action| OverdueAction {
                action_id: action.action_id,
                product: action.target.product.clone(),
                due_at: action.due_at,
            })
            .collect();
        overdue.sort_by_key(|action| action.due_at);
        overdue
    }

    /// For a scheduler: the earliest due date of the actions still running
    /// (neither done nor breached for their due date), possibly past.
    pub fn next_due(&self) -> Option<OffsetDateTime> {
        let plan = self.details.as_ref()?;
        plan.actions
            .iter()
            .filter(|action| !plan.is_done(action) && !plan.is_breached(action))
            .map(|action| action.due_at)
            .min()
    }

    /// At least one action, and every action released or verified.
    pub fn is_complete(&self) -> bool {
        self.details
            .as_ref()
            .is_some_and(|plan| !plan.actions.is_empty() && plan.actions.iter().all(|a| plan.is_done(a)))
    }

    /// The affected products without any VEX status (what blocks publishing an advisory).
    pub fn unresolved_products(&self) -> Vec<String> {
        self.details.as_ref().map(PlanDetails::unresolved_products).unwrap_or_default()
    }

    /// The plan in numbers at `now`; `None` until opened.
    pub fn summary(&self, now: OffsetDateTime) -> Option<PlanSummary> {
        let plan = self.details.as_ref()?;
        let mut summary = PlanSummary {
            actions: plan.actions.len(),
            open: 0,
            released: 0,
            verified: 0,
            overdue: 0,
            product_statuses: BTreeMap::new(),
        };
        for action in &plan.actions {
            let released = plan.is_released(action);
            let verified = action.verification.is_some();
            summary.released += usize::from(released);
            summary.verified += usize::from(verified);
            if !released && !verified {
                summary.open += 1;
                summary.overdue += usize::from(action.due_at <= now);
            }
        }
        for entry in &plan.affected_products {
            let statuses = plan
                .product_statuses
                .iter()
                .filter(|status| same_product(&status.product, &entry.product))
                .map(|status| (status.version.clone(), status.status))
                .collect();
            summary.product_statuses.insert(entry.product.clone(), statuses);
        }
        Some(summary)
    }

    /// Decides. See the module documentation for the order of the checks.
    pub fn handle(&self, command: PlanCommand, now: OffsetDateTime) -> Result<Vec<PlanEvent>, PlanError> {
        let Some(plan) = &self.details else {
            return match command {
                PlanCommand::Open { case_id, case_key, severity, products } => {
                    self.open(case_id, case_key, severity, &products, now)
                }
                _ => Err(PlanError::NotFound),
            };
        };
        let (plan_id, case_id) = (plan.id, plan.case_id);
        let event = match command {
            PlanCommand::Open { case_id: other, .. } => {
                if other != case_id {
                    return Err(invalid("case_id", format!("plan {plan_id} belongs to case {case_id}")));
                }
                return Ok(Vec::new());
            }
            PlanCommand::PlanAction {
                action_id,
                target,
                action,
                owner_team,
                target_release,
                due_override,
                description,
            } => {
                let mut violations = Vec::new();
                let product = known_product(&mut violations, plan, "target.product", &target.product);
                let versions = check_version_spec(&mut violations, "target.versions", &target.versions, true);
                check_name(&mut violations, "owner_team", &owner_team);
                let target_release = present(Some(&target_release)).map(str::to_owned);
                if let Some(release) = &target_release {
                    check_chars(&mut violations, "target_release", release, MAX_VERSION_CHARS);
                }
                check_text(&mut violations, "description", &description, false);
                let mut override_reason = None;
                if let Some((due_at, reason)) = &due_override {
                    let reason = reason.trim();
                    if reason.is_empty() {
                        violations.push(FieldViolation::new(
                            "due_override.reason",
                            "a due date other than the policy's needs a reason",
                        ));
                    } else {
                        check_reason(&mut violations, "due_override.reason", reason, MAX_REASON_CHARS);
                    }
                    if *due_at < plan.opened_at {
                        violations.push(FieldViolation::new(
                            "due_override.due_at",
                            "due date must not be before the plan was opened",
                        ));
                    }
                    override_reason = Some(reason.to_owned());
                }
                let existing = plan.action(action_id);
                if existing.is_none() && plan.actions.len() >= MAX_ACTIONS {
                    violations.push(FieldViolation::new(
                        "action_id",
                        format!("a plan has at most {MAX_ACTIONS} actions"),
                    ));
                }
                reject(violations)?;
                let product = product.unwrap_or_default();
                let due_at = match &due_override {
                    Some((due_at, _)) => *due_at,
                    None => self.policy.due_at(plan.opened_at, plan.severity, &product),
                };
                let target = AffectedProduct { product, versions };
                let description = description.trim().to_owned();
                let owner_team = owner_team.trim().to_owned();
                if existing.is_some_and(|current| {
                    current.target == target
                        && current.action == action
                        && current.owner_team == owner_team
                        && current.target_release == target_release
                        && current.due_at == due_at
                        && current.due_date_override_reason == override_reason
                        && current.description == description
                }) {
                    return Ok(Vec::new());
                }
                PlanEvent::RemediationActionPlanned {
                    plan_id,
                    case_id,
                    action_id,
                    target,
                    action,
                    owner_team,
                    target_release,
                    due_at,
                    due_date_override_reason: override_reason,
                    description,
                    planned_at: now,
                }
            }
            PlanCommand::RecordRelease {
                action_id,
                product,
                fixed_version,
                released_at,
                release_notes_url,
            } => {
                if let Some(action_id) = action_id {
                    if plan.action(action_id).is_none() {
                        return Err(PlanError::ActionNotFound { plan_id, action_id });
                    }
                }
                let mut violations = Vec::new();
                let product = known_product(&mut violations, plan, "product", &product);
                if let (Some(product), Some(action)) = (&product, action_id.and_then(|id| plan.action(id))) {
                    if !same_product(product, &action.target.product) {
                        violations.push(FieldViolation::new(
                            "product",
                            format!(
                                "action {} is planned for product {:?}, not {product:?}",
                                action.action_id, action.target.product
                            ),
                        ));
                    }
                }
                let fixed_version = fixed_version.trim().to_owned();
                check_required_chars(&mut violations, "fixed_version", &fixed_version, MAX_VERSION_CHARS);
                vers::check_version_or_range(&mut violations, "fixed_version", &fixed_version);
                let release_notes_url = present(Some(&release_notes_url)).map(str::to_owned);
                if let Some(url) = &release_notes_url {
                    check_url(&mut violations, "release_notes_url", url);
                }
                if plan.releases.len() >= MAX_RELEASES {
                    violations.push(FieldViolation::new(
                        "product",
                        format!("a plan records at most {MAX_RELEASES} releases"),
                    ));
                }
                reject(violations)?;
                let product = product.unwrap_or_default();
                if plan.releases.iter().any(|release| {
                    release.action_id == action_id
                        && release.product == product
                        && release.fixed_version == fixed_version
                }) {
                    return Ok(Vec::new());
                }
                PlanEvent::ReleaseRecorded {
                    plan_id,
                    case_id,
                    action_id,
                    product,
                    fixed_version,
                    released_at,
                    release_notes_url,
                    recorded_at: now,
                }
            }
            PlanCommand::SetProductStatus { product, version, status, justification, statement } => {
                let mut violations = Vec::new();
                let product = known_product(&mut violations, plan, "product", &product);
                let version = version.trim().to_owned();
                check_required_chars(&mut violations, "version", &version, MAX_STATUS_VERSION_CHARS);
                vers::check_version_or_range(&mut violations, "version", &version);
                match (status, justification) {
                    (ProductStatus::KnownNotAffected, None) => violations.push(FieldViolation::new(
                        "justification",
                        "a version that is not affected needs a justification",
                    )),
                    (ProductStatus::KnownNotAffected, Some(_)) | (_, None) => {}
                    (_, Some(_)) => violations.push(FieldViolation::new(
                        "justification",
                        "a justification is only given for a version that is not affected",
                    )),
                }
                check_text(&mut violations, "statement", &statement, false);
                let product = product.unwrap_or_default();
                let existing = plan
                    .product_statuses
                    .iter()
                    .find(|entry| entry.product == product && entry.version == version);
                if existing.is_none() && plan.product_statuses.len() >= MAX_PRODUCT_STATUSES {
                    violations.push(FieldViolation::new(
                        "version",
                        format!("a plan holds at most {MAX_PRODUCT_STATUSES} product statuses"),
                    ));
                }
                reject(violations)?;
                let statement = statement.trim().to_owned();
                if existing.is_some_and(|entry| {
                    entry.status == status
                        && entry.justification == justification
                        && entry.statement == statement
                }) {
                    return Ok(Vec::new());
                }
                PlanEvent::ProductStatusSet {
                    plan_id,
                    case_id,
                    product,
                    version,
                    status,
                    justification,
                    statement,
                    set_at: now,
                }
            }
            PlanCommand::Verify { action_id, note } => {
                let Some(action) = plan.action(action_id) else {
                    return Err(PlanError::ActionNotFound { plan_id, action_id });
                };
                let mut violations = Vec::new();
                check_text(&mut violations, "note", &note, false);
                reject(violations)?;
                if action.verification.is_some() {
                    return Ok(Vec::new());
                }
                PlanEvent::RemediationVerified {
                    plan_id,
                    case_id,
                    action_id,
                    verification_note: note.trim().to_owned(),
                    verified_at: now,
                }
            }
            PlanCommand::RecomputeDueDates { severity, reason } => {
                let mut violations = Vec::new();
                let reason = reason.trim().to_owned();
                check_reason(&mut violations, "reason", &reason, MAX_REASON_CHARS);
                reject(violations)?;
                let sla_policy = self.policy.name();
                let changes: Vec<DueDateChange> = plan
                    .actions
                    .iter()
                    .filter(|action| action.due_date_override_reason.is_none())
                    .filter_map(|action| {
                        let due_at = self.policy.due_at(plan.opened_at, severity, &action.target.product);
                        (due_at != action.due_at).then_some(DueDateChange {
                            action_id: action.action_id,
                            previous_due_at: action.due_at,
                            due_at,
                        })
                    })
                    .collect();
                // A new severity or policy is recorded even when no action
                // moves: the actions planned later follow it.
                if changes.is_empty() && severity == plan.severity && sla_policy == plan.sla_policy {
                    return Ok(Vec::new());
                }
                PlanEvent::RemediationDueDatesRecomputed {
                    plan_id,
                    case_id,
                    severity,
                    sla_policy,
                    changes,
                    reason,
                    recomputed_at: now,
                }
            }
        };
        Ok(vec![event])
    }

    fn open(
        &self,
        case_id: CaseId,
        case_key: CaseKey,
        severity: Option<CvssSeverity>,
        products: &[AffectedProduct],
        now: OffsetDateTime,
    ) -> Result<Vec<PlanEvent>, PlanError> {
        let mut violations = Vec::new();
        let affected_products = check_products(&mut violations, products);
        let sla_policy = self.policy.name();
        if sla_policy.chars().count() > MAX_POLICY_LABEL_CHARS {
            violations.push(FieldViolation::new(
                "sla_policy",
                format!("policy label must be at most {MAX_POLICY_LABEL_CHARS} characters"),
            ));
        }
        reject(violations)?;
        Ok(vec![PlanEvent::RemediationPlanOpened {
            plan_id: PlanId::for_case(case_id),
            case_id,
            case_key,
            severity,
            sla_policy,
            affected_products,
            opened_at: now,
        }])
    }

    /// Evolves the state; events that do not fit are applied as far as they can be.
    pub fn apply(&mut self, event: &PlanEvent) {
        self.version += 1;
        if let PlanEvent::RemediationPlanOpened {
            plan_id,
            case_id,
            case_key,
            severity,
            sla_policy,
            affected_products,
            opened_at,
        } = event
        {
            if self.details.is_none() {
                self.details = Some(PlanDetails {
                    id: *plan_id,
                    case_id: *case_id,
                    case_key: *case_key,
                    severity: *severity,
                    sla_policy: sla_policy.clone(),
                    affected_products: affected_products.clone(),
                    actions: Vec::new(),
                    releases: Vec::new(),
                    product_statuses: Vec::new(),
                    breaches: Vec::new(),
                    opened_at: *opened_at,
                    updated_at: *opened_at,
                });
            }
            return;
        }
        let Some(plan) = &mut self.details else { return };
        plan.updated_at = plan.updated_at.max(event.at());
        match event {
            PlanEvent::RemediationPlanOpened { .. } => {}
            PlanEvent::RemediationActionPlanned {
                action_id,
                target,
                action,
                owner_team,
                target_release,
                due_at,
                due_date_override_reason,
                description,
                planned_at,
                ..
            } => {
                let planned = PlannedAction {
                    action_id: *action_id,
                    target: target.clone(),
                    action: *action,
                    owner_team: owner_team.clone(),
                    target_release: target_release.clone(),
                    due_at: *due_at,
                    due_date_override_reason: due_date_override_reason.clone(),
                    description: description.clone(),
                    planned_at: *planned_at,
                    verification: None,
                };
                match plan.actions.iter_mut().find(|a| a.action_id == *action_id) {
                    Some(existing) => {
                        // A verification stands for the same kind of action on
                        // the same product; anything else is a new action to verify.
                        let same = existing.action == *action
                            && same_product(&existing.target.product, &target.product);
                        let verification = if same { existing.verification.take() } else { None };
                        *existing = PlannedAction { verification, ..planned };
                    }
                    None => plan.actions.push(planned),
                }
            }
            PlanEvent::ReleaseRecorded {
                action_id,
                product,
                fixed_version,
                released_at,
                release_notes_url,
                recorded_at,
                ..
            } => plan.releases.push(Release {
                action_id: *action_id,
                product: product.clone(),
                fixed_version: fixed_version.clone(),
                released_at: *released_at,
                release_notes_url: release_notes_url.clone(),
                recorded_at: *recorded_at,
            }),
            PlanEvent::ProductStatusSet {
                product,
                version,
                status,
                justification,
                statement,
                set_at,
                ..
            } => {
                let entry = ProductVersionStatus {
                    product: product.clone(),
                    version: version.clone(),
                    status: *status,
                    justification: *justification,
                    statement: statement.clone(),
                    set_at: *set_at,
                };
                match plan
                    .product_statuses
                    .iter_mut()
                    .find(|s| same_product(&s.product, product) && s.version == *version)
                {
                    Some(existing) => *existing = entry,
                    None => plan.product_statuses.push(entry),
                }
            }
            PlanEvent::RemediationVerified { action_id, verification_note, verified_at, .. } => {
                if let Some(action) = plan.actions.iter_mut().find(|a| a.action_id == *action_id) {
                    action.verification.get_or_insert_with(|| Verification {
                        note: verification_note.clone(),
                        verified_at: *verified_at,
                    });
                }
            }
            PlanEvent::RemediationDueDatesRecomputed { severity, sla_policy, changes, .. } => {
                plan.severity = *severity;
                plan.sla_policy = sla_policy.clone();
                for change in changes {
                    if let Some(action) = plan.actions.iter_mut().find(|a| a.action_id == change.action_id) {
                        action.due_at = change.due_at;
                    }
                }
            }
            PlanEvent::SlaBreached { action_id, deadline, .. } => {
                if !plan.breaches.contains(&(*action_id, *deadline)) {
                    plan.breaches.push((*action_id, *deadline));
                }
            }
        }
    }
}

impl Aggregate for Plan {
    type Command = PlanCommand;
    type Event = PlanEvent;
    type Error = PlanError;

    const AGGREGATE_TYPE: &'static str = "remediation";

    fn handle(&self, command: PlanCommand, now: OffsetDateTime) -> Result<Vec<PlanEvent>, PlanError> {
        Plan::handle(self, command, now)
    }

    fn apply(&mut self, event: &PlanEvent) {
        Plan::apply(self, event);
    }

    fn version(&self) -> u64 {
        self.version
    }
}

impl fmt::Display for RemediationAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fix => "fix",
            Self::Workaround => "workaround",
            Self::Mitigation => "mitigation",
            Self::Suspend => "suspend",
            Self::None => "none",
        })
    }
}

fn invalid(field: &str, description: impl Into<String>) -> PlanError {
    PlanError::Validation(vec![FieldViolation::new(field, description)])
}

fn reject(violations: Vec<FieldViolation>) -> Result<(), PlanError> {
    if violations.is_empty() { Ok(()) } else { Err(PlanError::Validation(violations)) }
}

/// The plan's spelling of `product`, or a violation on `field`.
fn known_product(
    violations: &mut Vec<FieldViolation>,
    plan: &PlanDetails,
    field: &str,
    product: &str,
) -> Option<String> {
    let trimmed = product.trim();
    if trimmed.is_empty() {
        violations.push(FieldViolation::new(field, "product must not be empty"));
        return None;
    }
    match plan.product(trimmed) {
        Some(name) => Some(name.to_owned()),
        None => {
            let shown: String = trimmed.chars().take(MAX_PRODUCT_NAME_CHARS).collect();
            violations.push(FieldViolation::new(
                field,
                format!("product {shown:?} is not one of the plan's affected products"),
            ));
            None
        }
    }
}

/// The affected products of an opening, trimmed: at most
/// [`MAX_AFFECTED_PRODUCTS`], names 1..200 characters and distinct without
/// case, versions as [`check_version_spec`] wants them.
fn check_products(
    violations: &mut Vec<FieldViolation>,
    products: &[AffectedProduct],
) -> Vec<AffectedProduct> {
    if products.len() > MAX_AFFECTED_PRODUCTS {
        violations.push(FieldViolation::new(
            "products",
            format!("at most {MAX_AFFECTED_PRODUCTS} affected products"),
        ));
        return Vec::new();
    }
    let mut checked: Vec<AffectedProduct> = Vec::with_capacity(products.len());
    for (index, entry) in products.iter().enumerate() {
        let product = entry.product.trim();
        let field = format!("products[{index}].product");
        check_required_chars(violations, &field, product, MAX_PRODUCT_NAME_CHARS);
        if let Some(first) =
            checked.iter().position(|p| !product.is_empty() && same_product(&p.product, product))
        {
            violations.push(FieldViolation::new(
                field,
                format!("product {product:?} is already listed at products[{first}]"),
            ));
        }
        let versions =
            check_version_spec(violations, &format!("products[{index}].versions"), &entry.versions, false);
        checked.push(AffectedProduct { product: product.to_owned(), versions });
    }
    checked
}

/// A range of 1..500 characters, or 1..100 distinct versions of 1..100
/// characters. `vers_checked`: the range must be one [`vers::VersRange`]
/// parses, and a listed version written as a range too (what a user sends);
/// not for the products a plan opens with, which triage checked when they
/// were set (events stored before the check must still open a plan).
fn check_version_spec(
    violations: &mut Vec<FieldViolation>,
    field: &str,
    versions: &VersionSpec,
    vers_checked: bool,
) -> VersionSpec {
    match versions {
        VersionSpec::Range(range) => {
            let range = range.trim();
            if vers_checked {
                vers::check_range(violations, field, range);
            } else {
                check_required_chars(violations, field, range, MAX_RANGE_CHARS);
            }
            VersionSpec::Range(range.to_owned())
        }
        VersionSpec::Explicit(list) => {
            if list.is_empty() {
                violations.push(FieldViolation::new(field, "at least one version must be listed"));
            } else if list.len() > MAX_LISTED_VERSIONS {
                violations
                    .push(FieldViolation::new(field, format!("at most {MAX_LISTED_VERSIONS} versions")));
                return VersionSpec::Explicit(Vec::new());
            }
            let mut trimmed: Vec<String> = Vec::with_capacity(list.len());
            for (position, version) in list.iter().enumerate() {
                let version = version.trim();
                let field = format!("{field}[{position}]");
                check_required_chars(violations, &field, version, MAX_VERSION_CHARS);
                if vers_checked {
                    vers::check_version_or_range(violations, &field, version);
                }
                if let Some(first) = trimmed.iter().position(|v| !version.is_empty() && v == version) {
                    violations.push(FieldViolation::new(
                        field,
                        format!("version {version:?} is already listed at [{first}]"),
                    ));
                }
                trimmed.push(version.to_owned());
            }
            VersionSpec::Explicit(trimmed)
        }
    }
}

/// At most `max` characters of [`validation::single_line_text`] (blank allowed).
pub(crate) fn check_chars(violations: &mut Vec<FieldViolation>, field: &str, value: &str, max: usize) {
    Text::line(0, max).check(violations, field, value);
}

/// A reason or summary: at most `max` characters of
/// [`validation::multi_line_text`] (blank allowed).
pub(crate) fn check_reason(violations: &mut Vec<FieldViolation>, field: &str, value: &str, max: usize) {
    Text::block_chars(0, max).check(violations, field, value);
}

/// 1 to `max` characters, not blank.
pub(crate) fn check_required_chars(
    violations: &mut Vec<FieldViolation>,
    field: &str,
    value: &str,
    max: usize,
) {
    if value.trim().is_empty() {
        violations.push(FieldViolation::new(field, format!("{field} must not be empty")));
    } else {
        check_chars(violations, field, value, max);
    }
}

/// An https URL of at most [`MAX_URL_CHARS`] with a host and no whitespace.
pub(crate) fn check_url(violations: &mut Vec<FieldViolation>, field: &str, url: &str) {
    if let Err(problem) = check_https_url(url) {
        violations.push(FieldViolation::new(field, format!("URL {problem}")));
    }
}

/// Whether `url` is an absolute https URL with a host, at most
/// [`MAX_URL_CHARS`], without whitespace or control characters. The error
/// completes "URL ...".
pub fn check_https_url(url: &str) -> Result<(), &'static str> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err("must be at most 2048 characters");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let Some(scheme_end) = url.find("://") else { return Err("must start with https://") };
    if !url[..scheme_end].eq_ignore_ascii_case("https") {
        return Err("must start with https://");
    }
    let rest = &url[scheme_end + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with([':', '.']) {
        return Err("must name a host");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
