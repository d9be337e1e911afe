//! Case reads: `GetCase` (read model, else the stream), `ListCases` with
//! filters, order and page tokens, and the timeline.

use psirt_kit::request::{PageBytes, page_token};

use super::*;

/// Most read-model pages one `ListCases` call looks at to fill its page with
/// cases in the caller's product scopes.
const MAX_SCOPED_READS: u32 = 8;

impl Triage {
    /// `GetCase`: from the read model; a case the projection has not
    /// reached yet is folded from its stream, so a case id is readable the
    /// moment its case exists, and a command's effect the moment it returned.
    ///
    /// A case out of the caller's product scopes is not found, like a missing one.
    pub async fn get(&self, req: triage::GetCaseRequest) -> Result<triage::Case> {
        use triage::get_case_request::Lookup;
        let scopes = scope::current();
        let mut case = match req.lookup {
            Some(Lookup::CaseId(id)) => {
                let id = parse_case_id("case_id", &id)?;
                self.case_by_id(id)
                    .await?
                    .filter(|case| scope::permits(&scopes, case))
                    .ok_or_else(|| ApiError::not_found("case", id.to_string()))?
            }
            Some(Lookup::CaseKey(key)) => {
                let parsed: CaseKey = key.trim().parse().map_err(|e: psirt_domain::CaseKeyError| {
                    ApiError::invalid_argument("case_key", e.to_string())
                })?;
                let not_found = || ApiError::not_found("case", parsed.to_string());
                let mut case = readmodel::get_by_key(&self.inner.pool, &parsed.to_string())
                    .await?
                    .filter(|case| scope::permits(&scopes, case))
                    .ok_or_else(not_found)?;
                // Read your writes: fold in what the case's own stream has
                // beyond the read model (a command just appended). Best
                // effort: without NATS the read model answers alone.
                if let Ok(id) = case.case_id.parse::<CaseId>()
                    && let Ok(Some(last)) = self.inner.store.last_sequence(&mapping::subject(id)).await
                    && last > case.version
                {
                    self.fold_missing(id, &mut case).await?;
                    // its products may have changed since the row
                    if !scope::permits(&scopes, &case) {
                        return Err(not_found().into());
                    }
                }
                case
            }
            None => {
                return Err(ApiError::invalid_argument("case_id", "case_id or case_key must be given").into());
            }
        };
        view::refresh(&mut case, now());
        Ok(case)
    }

    /// A case by id. The stream is asked first (one direct get of the
    /// case's last event): it says whether the case exists at all, so a
    /// lookup of a case not opened yet (a client following the id intake
    /// promised) costs no query, and whether the read model's row is
    /// behind. Without NATS the read model answers alone.
    async fn case_by_id(&self, id: CaseId) -> Result<Option<triage::Case>> {
        let subject = mapping::subject(id);
        let last = match self.inner.store.last_sequence(&subject).await {
            Ok(last) => last,
            Err(e) => {
                debug!(case_id = %id, error = %e, "event store unavailable, case read from the read model only");
                return Ok(readmodel::get(&self.inner.pool, &id.to_string()).await?);
            }
        };
        if last.is_none() && self.inner.store.keeps_every_event() {
            return Ok(None);
        }
        let row = readmodel::get(&self.inner.pool, &id.to_string()).await?;
        let Some(last) = last else {
            // The stream no longer holds the case's events (age or size
            // limits): the read model is all there is.
            return Ok(row);
        };
        match row {
            Some(case) if case.version >= last => Ok(Some(case)),
            Some(mut case) => {
                self.fold_missing(id, &mut case).await?;
                Ok(Some(case))
            }
            None => {
                let loaded = self.load(id).await?;
                if !loaded.state.exists() {
                    return Ok(None);
                }
                let mut case = triage::Case::default();
                self.fold_into(&mut case, &loaded.events)?;
                Ok(Some(case))
            }
        }
    }

    /// Folds the case events after the view's version into it.
    async fn fold_missing(&self, id: CaseId, case: &mut triage::Case) -> Result<()> {
        let events = self.inner.store.load_after(&mapping::subject(id), case.version).await?;
        self.fold_into(case, &events)
    }

    /// `ListCases`, from the read model.
    pub async fn list(&self, req: triage::ListCasesRequest) -> Result<triage::ListCasesResponse> {
        let mut bad = Violations::new();
        if req.page_size < 0 {
            bad.violation(FieldViolation::new("page_size", "page size must not be negative"));
        }
        let settings = &self.inner.settings;
        let limit = match u32::try_from(req.page_size) {
            Ok(0) | Err(_) => settings.default_page_size,
            Ok(n) => n.min(settings.max_page_size),
        };
        let order = match parse_order_by(&req.order_by) {
            Ok(order) => order,
            Err(problem) => {
                bad.violation(FieldViolation::new("order_by", problem));
                Vec::new()
            }
        };
        let filter = check_filter(&mut bad, req.filter.unwrap_or_default());
        let order_key: Vec<String> = order
            .iter()
            .map(|(field, descending)| {
                format!("{}.{}", field.name(), if *descending { "desc" } else { "asc" })
            })
            .collect();
        let order_key = order_key.join(",");
        let after = if req.page_token.is_empty() {
            None
        } else {
            match decode_page_token(&req.page_token, &order_key, order.len()) {
                Some(pos) => Some(pos),
                None => {
                    bad.violation(FieldViolation::new(
                        "page_token",
                        "not a page token of this API and order",
                    ));
                    None
                }
            }
        };
        bad.finish()?;
        let as_of_sequence =
            psirt_projection::checkpoint(&self.inner.pool, readmodel::PROJECTION_NAME).await?;
        let values = |case: &triage::Case| -> Vec<i64> {
            order.iter().map(|(field, descending)| field.value(case, *descending)).collect()
        };
        let mut query = readmodel::ListQuery {
            filter,
            now_ms: mapping::millis(now()),
            order: order.clone(),
            after,
            limit,
        };
        // Cases out of the caller's product scopes are left out: pages of
        // the read model are read until this one is full (or
        // MAX_SCOPED_READS pages were looked at); the next page starts after
        // the last case looked at, so only cases out of scope are skipped.
        let scopes = scope::current();
        let mut cases = Vec::new();
        let mut looked_at: Option<(Vec<i64>, String)> = None;
        let mut more;
        let mut reads = 0;
        'read: loop {
            reads += 1;
            let (rows, rows_more) = readmodel::list(&self.inner.pool, &query).await?;
            for case in rows {
                if cases.len() == limit as usize {
                    more = true;
                    break 'read;
                }
                looked_at = Some((values(&case), case.case_id.clone()));
                if scope::permits(&scopes, &case) {
                    cases.push(case);
                }
            }
            more = rows_more;
            if !rows_more || cases.len() == limit as usize || reads >= MAX_SCOPED_READS {
                break;
            }
            query.after.clone_from(&looked_at);
        }
        // Bounded in bytes too: the next page starts after the last case kept.
        let cut = PageBytes::current().fit(&mut cases);
        let next_page_token = match (cases.last(), &looked_at) {
            (Some(last), _) if cut => encode_page_token(&order_key, &values(last), &last.case_id),
            (_, Some((values, id))) if more => encode_page_token(&order_key, values, id),
            _ => String::new(),
        };
        let at = now();
        for case in &mut cases {
            view::refresh(case, at);
        }
        Ok(triage::ListCasesResponse { cases, next_page_token, as_of_sequence })
    }

    /// `GetCaseTimeline`: the timeline index of the read model, each event
    /// read back from the stream by its sequence.
    pub async fn timeline(
        &self,
        req: triage::GetCaseTimelineRequest,
    ) -> Result<triage::GetCaseTimelineResponse> {
        let id = parse_case_id("case_id", &req.case_id)?;
        if req.page_size < 0 {
            return Err(ApiError::invalid_argument("page_size", "page size must not be negative").into());
        }
        let max = self.inner.settings.max_page_size;
        let limit = match u32::try_from(req.page_size) {
            Ok(0) | Err(_) => max,
            Ok(n) => n.min(max),
        };
        let after = if req.page_token.is_empty() {
            0
        } else {
            let parts = page_token::decode(&req.page_token, "timeline", 1)?;
            parts[0]
                .parse::<u64>()
                .map_err(|_| ApiError::invalid_argument("page_token", "not a page token of this query"))?
        };
        let case_id = id.to_string();
        // Out of the caller's product scopes: not found, like a missing case.
        let scopes = scope::current();
        if !scopes.is_all() && !self.case_by_id(id).await?.is_some_and(|case| scope::permits(&scopes, &case))
        {
            return Err(ApiError::not_found("case", case_id).into());
        }
        let mut sequences = readmodel::timeline(&self.inner.pool, &case_id, after, limit + 1).await?;
        if sequences.is_empty() && after == 0 && readmodel::get(&self.inner.pool, &case_id).await?.is_none() {
            return Err(ApiError::not_found("case", case_id).into());
        }
        let more = sequences.len() > limit as usize;
        sequences.truncate(limit as usize);
        let mut entries = Vec::with_capacity(sequences.len());
        // Bounded in bytes too: the page ends before the first entry that does not fit,
        // and the next one resumes after the last sequence looked at.
        let mut page = PageBytes::current();
        let mut resume = None;
        let mut cut = false;
        for sequence in &sequences {
            let Some(event) = self.inner.store.get(*sequence).await? else {
                resume = Some(*sequence);
                continue;
            };
            let entry = triage::TimelineEntry {
                sequence: event.sequence,
                event_id: event.id.map(|i| i.to_string()).unwrap_or_default(),
                event_type: event.event_type.clone(),
                subject: event.subject.clone(),
                occurred_at: Some(mapping::timestamp(view::occurred_at(&event))),
                recorded_at: Some(mapping::timestamp(event.stored_at)),
                actor: event.metadata.actor.clone().unwrap_or_default(),
                event: Some(prost_types::Any {
                    type_url: format!("type.googleapis.com/{}", event.event_type),
                    value: event.payload.to_vec(),
                }),
                summary: view::summary(&event),
                schema_version: event.schema_version,
                causation_id: event.metadata.causation_id.clone().unwrap_or_default(),
                correlation_id: event.metadata.correlation_id.clone().unwrap_or_default(),
            };
            if !page.admit(&entry) {
                cut = true;
                break;
            }
            entries.push(entry);
            resume = Some(*sequence);
        }
        let resume = if cut { resume } else { sequences.last().copied() };
        let next_page_token = match resume {
            Some(last) if more || cut => page_token::encode("timeline", &[&last.to_string()]),
            _ => String::new(),
        };
        Ok(triage::GetCaseTimelineResponse { entries, next_page_token })
    }
}

/// A `CaseFilter` checked and in the read model's terms.
fn check_filter(bad: &mut Violations, filter: triage::CaseFilter) -> readmodel::Filter {
    if filter.statuses.len() > fields::MAX_FILTER_VALUES {
        bad.violation(FieldViolation::new(
            "filter.statuses",
            format!("at most {} statuses", fields::MAX_FILTER_VALUES),
        ));
    }
    for (i, s) in filter.statuses.iter().enumerate() {
        if common::CaseStatus::try_from(*s).is_err() || *s == 0 {
            bad.violation(FieldViolation::new(format!("filter.statuses[{i}]"), "unknown case status"));
        }
    }
    if filter.severities.len() > fields::MAX_FILTER_VALUES {
        bad.violation(FieldViolation::new(
            "filter.severities",
            format!("at most {} severities", fields::MAX_FILTER_VALUES),
        ));
    }
    for (i, s) in filter.severities.iter().enumerate() {
        if common::SeverityRating::try_from(*s).is_err() {
            bad.violation(FieldViolation::new(format!("filter.severities[{i}]"), "unknown severity rating"));
        }
    }
    if filter.sla_states.len() > fields::MAX_FILTER_VALUES {
        bad.violation(FieldViolation::new(
            "filter.sla_states",
            format!("at most {} SLA states", fields::MAX_FILTER_VALUES),
        ));
    }
    for (i, s) in filter.sla_states.iter().enumerate() {
        if triage::SlaState::try_from(*s).is_err() || *s == 0 {
            bad.violation(FieldViolation::new(format!("filter.sla_states[{i}]"), "unknown SLA state"));
        }
    }
    bad.text("filter.product", &filter.product, fields::PRODUCT_FILTER);
    bad.text("filter.assignee", &filter.assignee, fields::ASSIGNEE_FILTER);
    readmodel::Filter {
        statuses: filter.statuses,
        ratings: filter.severities,
        product: (!filter.product.is_empty()).then_some(filter.product),
        assignee: (!filter.assignee.is_empty()).then_some(filter.assignee),
        assigned: filter.assigned,
        embargoed: filter.embargoed,
        sla_states: filter.sla_states,
    }
}

/// `order_by` (AIP-132): comma-separated fields, each optionally followed
/// by `asc` or `desc`, each at most once. Empty: `opened_at desc`.
fn parse_order_by(order_by: &str) -> std::result::Result<Vec<(SortField, bool)>, String> {
    let order_by = order_by.trim();
    if order_by.is_empty() {
        return Ok(vec![(SortField::OpenedAt, true)]);
    }
    let mut order: Vec<(SortField, bool)> = Vec::new();
    for part in order_by.split(',') {
        let mut words = part.split_whitespace();
        let Some(field) = words.next() else { return Err("an empty field in the list".to_owned()) };
        let descending = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(format!("{other:?} is not asc or desc")),
        };
        if words.next().is_some() {
            return Err("expected `<field>` or `<field> desc` between commas".to_owned());
        }
        let sort = SortField::parse(field).ok_or_else(|| {
            format!(
                "{field:?} cannot be sorted by: use opened_at, updated_at, severity, case_key or next_due_at"
            )
        })?;
        if order.iter().any(|(f, _)| *f == sort) {
            return Err(format!("{field} is listed twice"));
        }
        order.push((sort, descending));
    }
    Ok(order)
}

/// A `ListCases` position, bound to its order: the sort values and the case id.
fn encode_page_token(order: &str, values: &[i64], case_id: &str) -> String {
    let values: Vec<String> = values.iter().map(i64::to_string).collect();
    page_token::encode(order, &[&values.join(","), case_id])
}

fn decode_page_token(token: &str, order: &str, keys: usize) -> Option<(Vec<i64>, String)> {
    let parts = page_token::decode(token, order, 2).ok()?;
    let values: Vec<i64> = parts[0].split(',').map(str::parse).collect::<std::result::Result<_, _>>().ok()?;
    if values.len() != keys {
        return None;
    }
    let id: CaseId = parts[1].parse().ok()?;
    Some((values, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_accepts_the_allowed_fields_once_each() {
        assert_eq!(parse_order_by(""), Ok(vec![(SortField::OpenedAt, true)]));
        assert_eq!(parse_order_by("severity desc"), Ok(vec![(SortField::Severity, true)]));
        assert_eq!(parse_order_by("case_key"), Ok(vec![(SortField::CaseKey, false)]));
        assert_eq!(
            parse_order_by("severity desc, next_due_at"),
            Ok(vec![(SortField::Severity, true), (SortField::NextDueAt, false)])
        );
        assert!(parse_order_by("title").is_err());
        assert!(parse_order_by("severity sideways").is_err());
        assert!(parse_order_by("severity,severity desc").is_err());
        assert!(parse_order_by("severity,").is_err());
    }

    #[test]
    fn page_tokens_are_bound_to_their_order() {
        let id = CaseId::new().to_string();
        let token = encode_page_token("severity.desc,opened_at.asc", &[4, -7], &id);
        assert_eq!(decode_page_token(&token, "severity.desc,opened_at.asc", 2), Some((vec![4, -7], id)));
        assert_eq!(decode_page_token(&token, "opened_at.desc", 1), None);
        assert_eq!(decode_page_token("zz", "severity.desc", 1), None);
    }
}
