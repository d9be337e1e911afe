//! The case decisions: each checks its request, then goes through the one
//! command path (`Triage::execute`).

use super::*;

impl Triage {
    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn start_triage(
        &self,
        principal: &Principal,
        req: triage::StartTriageRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let command = Command {
            name: "start-triage",
            event_type: "TriageStarted",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
        };
        self.execute(principal, command, |_| Ok(CaseCommand::StartTriage)).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn assign(
        &self,
        principal: &Principal,
        req: triage::AssignCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        bad.text("assignee", &req.assignee, Text::NAME);
        bad.text("team", &req.team, fields::TEAM);
        bad.finish()?;
        let command = Command {
            name: "assign",
            event_type: "CaseAssigned",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
        };
        let (assignee, team) = (req.assignee, Some(req.team));
        self.execute(principal, command, |_| {
            Ok(CaseCommand::Assign { assignee: assignee.clone(), team: team.clone() })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn assess(
        &self,
        principal: &Principal,
        req: triage::AssessSeverityRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        let ssvc = match &req.ssvc {
            None => None,
            Some(inputs) => ssvc_inputs(&mut bad, inputs),
        };
        for (field, value) in
            [("epss_probability", req.epss_probability), ("epss_percentile", req.epss_percentile)]
        {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                bad.violation(FieldViolation::new(field, format!("{field} must be between 0.0 and 1.0")));
            }
        }
        if req.epss_percentile.is_some() && req.epss_probability.is_none() {
            bad.violation(FieldViolation::new("epss_percentile", "epss_percentile needs epss_probability"));
        }
        if req.cwe_ids.len() > fields::MAX_CWE_IDS {
            bad.violation(FieldViolation::new("cwe_ids", format!("at most {} CWE ids", fields::MAX_CWE_IDS)));
        }
        for (i, cwe) in req.cwe_ids.iter().enumerate() {
            let digits = cwe.strip_prefix("CWE-").unwrap_or_default();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 10 {
                bad.violation(FieldViolation::new(format!("cwe_ids[{i}]"), "must look like CWE-79"));
            } else if req.cwe_ids[..i].contains(cwe) {
                bad.violation(FieldViolation::new(format!("cwe_ids[{i}]"), format!("{cwe} is listed twice")));
            }
        }
        bad.text("rationale", &req.rationale, Text::FREE);
        for (field, value, max) in [
            ("cvss_v3_vector", &req.cvss_v3_vector, fields::MAX_CVSS_V3_VECTOR_CHARS),
            ("cvss_v4_vector", &req.cvss_v4_vector, fields::MAX_CVSS_V4_VECTOR_CHARS),
        ] {
            if value.chars().count() > max {
                bad.violation(FieldViolation::new(
                    field,
                    format!("{field} must be at most {max} characters"),
                ));
            }
        }
        bad.finish()?;
        let decision = ssvc.map(|inputs| (inputs, ssvc::decide(&inputs)));
        let rename = |field: &str| match field {
            "cvss_v3" | "severity" => "cvss_v3_vector".to_owned(),
            "cvss_v4" => "cvss_v4_vector".to_owned(),
            "ssvc_decision" => "ssvc".to_owned(),
            other => other.to_owned(),
        };
        let command = Command {
            name: "assess",
            event_type: "SeverityAssessed",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
        };
        let evidence = SeverityEvidence {
            ssvc_inputs: ssvc,
            known_exploited: req.known_exploited,
            epss_probability: req.epss_probability,
            epss_percentile: req.epss_percentile,
            cwe_ids: req.cwe_ids,
            rationale: req.rationale,
        };
        let (v3, v4) = (req.cvss_v3_vector, req.cvss_v4_vector);
        self.execute(principal, command, |_| {
            Ok(CaseCommand::AssessSeverity {
                cvss_v3: Some(v3.clone()),
                cvss_v4: Some(v4.clone()),
                ssvc_decision: decision.map(|(_, d)| d.as_str().to_owned()),
                evidence: evidence.clone(),
            })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn set_products(
        &self,
        principal: &Principal,
        req: triage::SetAffectedProductsRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let explicit: Vec<bool> = req
            .products
            .iter()
            .map(|p| matches!(p.versions, Some(common::product_version_range::Versions::Explicit(_))))
            .collect();
        let rename = move |field: &str| {
            let Some(rest) = field.strip_prefix("entries") else { return field.to_owned() };
            let index = rest
                .strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|i| i.parse::<usize>().ok());
            let is_explicit = index.and_then(|i| explicit.get(i).copied()).unwrap_or(false);
            let versions = if is_explicit { ".explicit.versions" } else { ".range" };
            format!("products{}", rest.replacen(".versions", versions, 1))
        };
        let command = Command {
            name: "set-products",
            event_type: "AffectedProductsSet",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
        };
        let entries: Vec<_> = req.products.iter().map(mapping::product_from_proto).collect();
        // The list's own rules before anything is read (the case's state decides later).
        let mut bad = Violations::new();
        for v in psirt_domain::case::check_affected_products(&entries) {
            bad.push(rename(&v.field), v.description);
        }
        bad.finish()?;
        self.execute(principal, command, |_| {
            Ok(CaseCommand::SetAffectedProducts { entries: entries.clone() })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn accept(
        &self,
        principal: &Principal,
        req: triage::AcceptCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        bad.text("note", &req.note, Text::FREE);
        bad.finish()?;
        let command = Command {
            name: "accept",
            event_type: "CaseAccepted",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
        };
        let note = req.note;
        self.execute(principal, command, |_| Ok(CaseCommand::Accept { note: note.clone() })).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn reject(
        &self,
        principal: &Principal,
        req: triage::RejectCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        let reason = mapping::rejection_from_proto(req.reason);
        if reason.is_none() {
            bad.violation(FieldViolation::new("reason", "reason must be given"));
        }
        bad.text("reason_text", &req.reason_text, Text::FREE);
        let reason = bad.finish_with(reason)?;
        let rename = |field: &str| if field == "text" { "reason_text".to_owned() } else { field.to_owned() };
        let command = Command {
            name: "reject",
            event_type: "CaseRejected",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
        };
        let text = req.reason_text;
        self.execute(principal, command, |_| Ok(CaseCommand::Reject { reason, text: text.clone() })).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn mark_duplicate(
        &self,
        principal: &Principal,
        req: triage::MarkDuplicateRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let of = parse_case_id("duplicate_of_case_id", &req.duplicate_of_case_id)?;
        let mut bad = Violations::new();
        bad.text("note", &req.note, Text::FREE);
        bad.finish()?;
        let canonical = if of == case_id { None } else { Some(self.load(of).await?) };
        let canonical_key = match canonical.as_ref().map(|c| c.state.details()) {
            None => None,
            Some(Some(details)) => Some(details.key),
            Some(None) => {
                return Err(ApiError::invalid_argument(
                    "duplicate_of_case_id",
                    format!("case {of} does not exist"),
                )
                .into());
            }
        };
        let rename =
            |field: &str| if field == "other" { "duplicate_of_case_id".to_owned() } else { field.to_owned() };
        let command = Command {
            name: "mark-duplicate",
            event_type: "CaseMarkedDuplicate",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
        };
        let note = req.note;
        self.execute(principal, command, |_| {
            Ok(CaseCommand::MarkDuplicate { of, of_key: canonical_key, note: note.clone() })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn assign_cve(
        &self,
        principal: &Principal,
        req: triage::AssignCveRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        if req.cve_id.chars().count() > fields::MAX_CVE_ID_CHARS {
            bad.violation(FieldViolation::new(
                "cve_id",
                format!("cve_id must be at most {} characters", fields::MAX_CVE_ID_CHARS),
            ));
        }
        bad.text("assigner", &req.assigner, fields::CVE_ASSIGNER);
        bad.finish()?;
        let command = Command {
            name: "assign-cve",
            event_type: "CveAssigned",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
        };
        let (cve_id, assigner) = (req.cve_id, req.assigner.trim().to_owned());
        self.execute(principal, command, |_| {
            Ok(CaseCommand::AssignCve { cve_id: cve_id.clone(), assigner: assigner.clone() })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn set_embargo(
        &self,
        principal: &Principal,
        req: triage::SetEmbargoRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        if req.agreed_with.len() > fields::MAX_EMBARGO_PARTIES {
            bad.violation(FieldViolation::new(
                "agreed_with",
                format!("at most {} parties", fields::MAX_EMBARGO_PARTIES),
            ));
        }
        for (i, party) in req.agreed_with.iter().enumerate().take(fields::MAX_EMBARGO_PARTIES) {
            bad.text(&format!("agreed_with[{i}]"), party, fields::EMBARGO_PARTY);
        }
        bad.text("note", &req.note, Text::FREE);
        let zone = req.time_zone.trim();
        let resolved = match psirt_domain::check_time_zone(zone) {
            Ok(()) => resolve_embargo(&req.local_disclosure_time, zone).map_err(|v| bad.violation(v)).ok(),
            Err(problem) => {
                bad.violation(FieldViolation::new("time_zone", format!("time zone {problem}")));
                // The local time's own syntax, whatever the zone.
                if let Err(v) = resolve_embargo(&req.local_disclosure_time, "UTC") {
                    bad.violation(v);
                }
                None
            }
        };
        let ResolvedEmbargo { disclosure_at, local, time_zone, utc_offset_seconds } =
            bad.finish_with(resolved)?;
        let rename = |field: &str| {
            if field == "disclosure_at" { "local_disclosure_time".to_owned() } else { field.to_owned() }
        };
        let command = Command {
            name: "set-embargo",
            event_type: "EmbargoSet",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
        };
        let terms = EmbargoTerms {
            agreed_with: req.agreed_with.iter().map(|p| p.trim().to_owned()).collect(),
            note: req.note,
            local_disclosure_time: local,
            utc_offset_seconds,
        };
        self.execute(principal, command, |_| {
            Ok(CaseCommand::SetEmbargo { disclosure_at, time_zone: time_zone.clone(), terms: terms.clone() })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn escalate(
        &self,
        principal: &Principal,
        req: triage::EscalateCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        let level = mapping::level_from_proto(req.level);
        if level.is_none() {
            bad.violation(FieldViolation::new("level", "level must be given"));
        }
        bad.text("reason", &req.reason, Text::FREE_REQUIRED);
        let level = bad.finish_with(level)?;
        let command = Command {
            name: "escalate",
            event_type: "CaseEscalated",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
        };
        let (reason, incident) = (req.reason, req.incident);
        self.execute(principal, command, |_| {
            Ok(CaseCommand::Escalate {
                level,
                reason: reason.clone(),
                automatic: false,
                incident,
                sla_deadline: None,
            })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn close(&self, principal: &Principal, req: triage::CloseCaseRequest) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        let resolution = mapping::resolution_from_proto(req.resolution)
            .map_err(|problem| bad.violation(FieldViolation::new("resolution", problem)))
            .ok();
        bad.text("root_cause", &req.root_cause, Text::FREE);
        bad.text("lessons_learned", &req.lessons_learned, Text::FREE);
        let resolution = bad.finish_with(resolution)?;
        let command = Command {
            name: "close",
            event_type: "CaseClosed",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
        };
        let (root_cause, lessons_learned) = (req.root_cause, req.lessons_learned);
        self.execute(principal, command, |_| {
            Ok(CaseCommand::Close {
                resolution,
                root_cause: root_cause.clone(),
                lessons_learned: lessons_learned.clone(),
            })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn reopen(
        &self,
        principal: &Principal,
        req: triage::ReopenCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Violations::new();
        bad.text("reason", &req.reason, Text::FREE_REQUIRED);
        bad.finish()?;
        let command = Command {
            name: "reopen",
            event_type: "CaseReopened",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
        };
        let reason = req.reason;
        self.execute(principal, command, |_| Ok(CaseCommand::Reopen { reason: reason.clone() })).await
    }
}

/// The SSVC decision points of a request; every one must be given.
fn ssvc_inputs(bad: &mut Violations, inputs: &triage::SsvcInputs) -> Option<SsvcInputs> {
    use psirt_domain::{Automatable, Exploitation, PublicSafetyImpact, TechnicalImpact, ValueDensity};
    let before = bad.len();
    let mut need = |field: &str, ok: bool| {
        if !ok {
            bad.violation(FieldViolation::new(
                format!("ssvc.{field}"),
                format!("ssvc.{field} must be given"),
            ));
        }
    };
    let exploitation = match common::SsvcExploitation::try_from(inputs.exploitation) {
        Ok(common::SsvcExploitation::None) => Some(Exploitation::None),
        Ok(common::SsvcExploitation::Poc) => Some(Exploitation::PoC),
        Ok(common::SsvcExploitation::Active) => Some(Exploitation::Active),
        _ => None,
    };
    need("exploitation", exploitation.is_some());
    let automatable = match common::SsvcAutomatable::try_from(inputs.automatable) {
        Ok(common::SsvcAutomatable::No) => Some(Automatable::No),
        Ok(common::SsvcAutomatable::Yes) => Some(Automatable::Yes),
        _ => None,
    };
    need("automatable", automatable.is_some());
    let value_density = match common::SsvcValueDensity::try_from(inputs.value_density) {
        Ok(common::SsvcValueDensity::Diffuse) => Some(ValueDensity::Diffuse),
        Ok(common::SsvcValueDensity::Concentrated) => Some(ValueDensity::Concentrated),
        _ => None,
    };
    need("value_density", value_density.is_some());
    let technical_impact = match common::SsvcTechnicalImpact::try_from(inputs.technical_impact) {
        Ok(common::SsvcTechnicalImpact::Partial) => Some(TechnicalImpact::Partial),
        Ok(common::SsvcTechnicalImpact::Total) => Some(TechnicalImpact::Total),
        _ => None,
    };
    need("technical_impact", technical_impact.is_some());
    let public_safety_impact = match common::SsvcPublicSafetyImpact::try_from(inputs.public_safety_impact) {
        Ok(common::SsvcPublicSafetyImpact::Minimal) => Some(PublicSafetyImpact::Minimal),
        Ok(common::SsvcPublicSafetyImpact::Significant) => Some(PublicSafetyImpact::Significant),
        _ => None,
    };
    need("public_safety_impact", public_safety_impact.is_some());
    if bad.len() > before {
        return None;
    }
    Some(SsvcInputs {
        exploitation: exploitation?,
        automatable: automatable?,
        value_density: value_density?,
        technical_impact: technical_impact?,
        public_safety_impact: public_safety_impact?,
    })
}
