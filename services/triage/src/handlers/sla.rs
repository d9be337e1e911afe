//! The SLA scheduler's pass over the case view.

use super::*;

impl Triage {
    /// The SLA scheduler's pass: records every missed deadline of the case
    /// view as `SlaBreached` and escalates the case (`CaseEscalated`,
    /// automatic): the acknowledgement to the team, the triage decision to
    /// management. Event ids derive from case, clock and deadline, so
    /// replicas running the same pass append each once. Returns how many
    /// breaches were recorded.
    pub async fn record_breaches(&self) -> Result<usize> {
        let now = now();
        let due = readmodel::due_clocks(&self.inner.pool, mapping::millis(now)).await?;
        let system = Principal::system(crate::reactions::ACTOR);
        let mut recorded = 0;
        for (case_id, clock, deadline) in due {
            let Ok(case_id) = case_id.parse::<CaseId>() else { continue };
            let key = format!("{}-{}", clock.as_str(), mapping::millis(deadline));
            let breach = Command {
                name: "sla-breach",
                event_type: "SlaBreached",
                case_id,
                request_id: &key,
                expected_version: None,
                rename: &same,
            };
            let result =
                self.execute(&system, breach, |_| Ok(CaseCommand::RecordSlaBreach { clock, deadline })).await;
            if let Err(e) = result {
                tracing::warn!(case_id = %case_id, clock = clock.as_str(), error = %e, "sla breach not recorded");
                continue;
            }
            recorded += 1;
            psirt_kit::telemetry::record_sla_breach(clock.as_str());
            let level = match clock {
                psirt_domain::SlaClock::Acknowledge => psirt_domain::EscalationLevel::Team,
                psirt_domain::SlaClock::Triage => psirt_domain::EscalationLevel::Management,
            };
            let escalate = Command {
                name: "sla-escalate",
                event_type: "CaseEscalated",
                case_id,
                request_id: &key,
                expected_version: None,
                rename: &same,
            };
            let reason = format!("the SLA {} deadline passed", clock.as_str());
            let result = self
                .execute(&system, escalate, |_| {
                    Ok(CaseCommand::Escalate {
                        level,
                        reason: reason.clone(),
                        automatic: true,
                        incident: false,
                        sla_deadline: Some(psirt_domain::SlaDeadline { clock, deadline }),
                    })
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(case_id = %case_id, clock = clock.as_str(), error = %e, "sla escalation not recorded");
            }
        }
        Ok(recorded)
    }
}
