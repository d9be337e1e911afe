//! Live case changes (`CaseService.WatchCases`) and the case view
//! projection's lifecycle in the running service (start, stop, rebuild).
//!
//! The case view projection runs as [`WatchedCases`]: the read model's own
//! projection plus, for every batch, the views of the cases the batch changed
//! (read in the batch's transaction, before and after). Once the runner has
//! committed the batch (its after-commit hook), the [`WatchHub`] keeps those
//! changes in a bounded in-memory buffer, for resuming watches, and
//! broadcasts them on a bounded `tokio::sync::broadcast` channel to the live
//! watches. Each watch filters in memory and sends in stream order.
//!
//! - Resume: a watch from `after_sequence` replays the buffered changes after
//!   it, then follows the broadcast; the hand-over happens under the hub's
//!   lock, so no change is lost or sent twice in between. A position below
//!   the oldest change the buffer still holds (or from before the service
//!   started) answers `OUT_OF_RANGE`.
//! - A watch that lags the broadcast by more than `watch.lag_limit` changes
//!   (its client reads too slowly) ends with `ABORTED`, naming the position
//!   to resume after, instead of silently skipping changes.
//! - At most `watch.max_watchers` watches at once; one more answers
//!   `RESOURCE_EXHAUSTED`.
//! - A replica whose projection is on standby (another replica holds the
//!   lease) commits nothing itself: its hub follows the read model instead
//!   (every [`FOLLOW_EVERY`]), taking the views changed since its position
//!   from the read model. Those changes are coalesced per case and only sent
//!   when the case matches after the change (the view before is not known).
//!
//! [`case_view`] supervises the projection runner (the kit's
//! [`Rebuildable`]): it runs it, and on an admin's request stops it, rebuilds
//! the read model from sequence 1 (holding the lease) and runs it again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use psirt_domain::SlaPolicy;
use psirt_eventstore::{DecodeError, EventStore, RecordedEvent};
use psirt_kit::rebuild::Rebuildable;
use psirt_kit::{ApiError, FieldViolation};
use psirt_projection::{ApplyError, Projection, ProjectionRunner, ProjectionSettings};
use psirt_proto::{common, events, triage};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tonic::Status;
use tracing::warn;

use crate::mapping;
use crate::readmodel::{self, CasesProjection, Filter, PROJECTION_NAME};
use crate::view;

/// A watch with nothing to send tells where it stands this often.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often a hub checks whether the read model moved on without it (its
/// projection on standby).
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Messages queued per watch towards its client before the watch waits
/// (and, waiting, lags the broadcast).
const CLIENT_QUEUE: usize = 64;
/// Most views the standby follower reads per query.
const FOLLOW_BATCH: u32 = 500;

/// `[watch]`: limits of `CaseService.WatchCases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchSettings {
    /// Most watches served at once; one more answers `RESOURCE_EXHAUSTED`.
    pub max_watchers: usize,
    /// Recent case changes kept in memory for resuming watches (each with
    /// the case view before and after); a resume position older than the
    /// oldest kept change answers `OUT_OF_RANGE`.
    pub buffer_size: usize,
    /// Most live changes a watch may fall behind (its client reading too
    /// slowly) before it ends with `ABORTED`.
    pub lag_limit: usize,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self { max_watchers: 256, buffer_size: 4096, lag_limit: 1024 }
    }
}

impl WatchSettings {
    /// Every problem with the settings, as (key, problem).
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if !(1..=100_000).contains(&self.max_watchers) {
            out.push(("watch.max_watchers", "must be between 1 and 100000"));
        }
        if !(1..=1_000_000).contains(&self.buffer_size) {
            out.push(("watch.buffer_size", "must be between 1 and 1000000"));
        }
        if !(1..=1_000_000).contains(&self.lag_limit) {
            out.push(("watch.lag_limit", "must be between 1 and 1000000"));
        }
        out
    }
}

/// One change of one case, as committed to the read model.
#[derive(Debug, Clone)]
pub struct Change {
    /// Sequence of the (last) event that changed the case.
    pub sequence: u64,
    pub event_type: String,
    pub event_id: String,
    pub occurred_at: Option<prost_types::Timestamp>,
    /// The view before the change; `None` for a new case, or when not known
    /// (a standby replica following the read model).
    pub before: Option<triage::Case>,
    /// The view after the change.
    pub after: triage::Case,
}

#[derive(Debug, Clone)]
enum Item {
    Change(Arc<Change>),
    /// The read model's checkpoint moved here.
    Checkpoint(u64),
}

struct HubState {
    /// Changes with a sequence above `floor`, in order.
    buffer: VecDeque<Arc<Change>>,
    /// Every change above it is in the buffer.
    floor: u64,
    /// The read model's checkpoint as far as published.
    head: u64,
    /// When this process last committed a batch itself.
    last_local_commit: Option<tokio::time::Instant>,
}

struct HubInner {
    settings: WatchSettings,
    state: Mutex<HubState>,
    live: broadcast::Sender<Item>,
    permits: Arc<Semaphore>,
    /// The changes of the batch being applied, published at its commit.
    staged: Mutex<Vec<Change>>,
    closing: watch::Sender<bool>,
}

/// What a new watch starts from: the buffered changes to replay, the
/// position after them, and the live changes.
type Subscription = (Vec<Arc<Change>>, u64, broadcast::Receiver<Item>);

/// The in-process fan-out of committed case changes to the watches.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<HubInner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WatchHub {
    /// A hub whose changes start after `checkpoint` (the read model's
    /// checkpoint when the service starts).
    pub fn new(settings: WatchSettings, checkpoint: u64) -> Self {
        let (live, _) = broadcast::channel(settings.lag_limit.max(1));
        let (closing, _) = watch::channel(false);
        Self {
            inner: Arc::new(HubInner {
                permits: Arc::new(Semaphore::new(settings.max_watchers)),
                settings,
                state: Mutex::new(HubState {
                    buffer: VecDeque::new(),
                    floor: checkpoint,
                    head: checkpoint,
                    last_local_commit: None,
                }),
                live,
                staged: Mutex::new(Vec::new()),
                closing,
            }),
        }
    }

    /// The read model's checkpoint as far as published to the watches.
    pub fn head(&self) -> u64 {
        lock(&self.inner.state).head
    }

    /// Ends every watch (with `UNAVAILABLE` and the position to resume
    /// after): the service is shutting down.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    fn stage(&self, changes: Vec<Change>) {
        *lock(&self.inner.staged) = changes;
    }

    /// The runner committed up to `checkpoint`: publishes the staged changes.
    fn committed(&self, checkpoint: u64) {
        let staged = std::mem::take(&mut *lock(&self.inner.staged));
        let mut state = lock(&self.inner.state);
        state.last_local_commit = Some(tokio::time::Instant::now());
        self.publish(&mut state, staged, checkpoint);
    }

    /// Appends changes above the head to the buffer, broadcasts them and
    /// moves the head to `checkpoint`. Called with the state locked, so a
    /// watch subscribing in between sees each change exactly once.
    fn publish(&self, state: &mut HubState, changes: Vec<Change>, checkpoint: u64) {
        let head = state.head;
        for change in changes {
            if change.sequence <= head || change.sequence > checkpoint {
                continue;
            }
            let change = Arc::new(change);
            state.buffer.push_back(Arc::clone(&change));
            while state.buffer.len() > self.inner.settings.buffer_size {
                if let Some(evicted) = state.buffer.pop_front() {
                    state.floor = state.floor.max(evicted.sequence);
                }
            }
            let _ = self.inner.live.send(Item::Change(change));
        }
        if checkpoint > state.head {
            state.head = checkpoint;
            let _ = self.inner.live.send(Item::Checkpoint(checkpoint));
        }
    }

    /// The buffered changes after `after` (unset: none, from now on), the
    /// position the watch starts at, and the live receiver.
    fn subscribe(&self, after: Option<u64>) -> Result<Subscription, Status> {
        let state = lock(&self.inner.state);
        let (backlog, position) = match after {
            None => (Vec::new(), state.head),
            Some(after) if after < state.floor => {
                return Err(Status::out_of_range(format!(
                    "after_sequence {after} is older than the oldest change this server can replay \
                     (it replays changes after sequence {}); list the cases again (ListCases) and \
                     watch from the list's as_of_sequence",
                    state.floor
                )));
            }
            Some(after) => {
                (state.buffer.iter().filter(|c| c.sequence > after).cloned().collect(), after.max(state.head))
            }
        };
        Ok((backlog, position, self.inner.live.subscribe()))
    }

    /// `WatchCases`: validates, takes a watcher slot, and streams.
    pub fn watch(&self, req: triage::WatchCasesRequest) -> Result<WatchReceiver, Status> {
        let filter = check_filter(req.filter.unwrap_or_default())?;
        let permit = Arc::clone(&self.inner.permits).try_acquire_owned().map_err(|_| {
            Status::from(ApiError::ResourceExhausted(format!(
                "this server already serves its maximum of {} watches (watch.max_watchers); retry later",
                self.inner.settings.max_watchers
            )))
        })?;
        let (backlog, position, live) = self.subscribe(req.after_sequence)?;
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let watcher = Watcher {
            filter,
            scopes: crate::scope::current(),
            skip_upto: req.after_sequence.unwrap_or(0),
            position,
            told: req.after_sequence.unwrap_or(position),
            tx,
            closing: self.inner.closing.subscribe(),
        };
        tokio::spawn(async move {
            let _permit = permit;
            watcher.run(backlog, live).await;
        });
        Ok(rx)
    }

    /// On a replica whose projection is on standby, publishes what the
    /// active replica committed, read back from the read model; until
    /// `stop`.
    pub async fn follow_read_model(self, pool: AnyPool, store: EventStore, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
                () = stopped(&mut stop) => return,
            }
            let (head, idle) = {
                let state = lock(&self.inner.state);
                let idle = state.last_local_commit.is_none_or(|at| at.elapsed() >= FOLLOW_EVERY * 2);
                (state.head, idle)
            };
            if !idle {
                continue;
            }
            if let Err(e) = self.follow_once(&pool, &store, head).await {
                warn!(error = %e, "watch hub failed to follow the case view");
            }
        }
    }

    async fn follow_once(&self, pool: &AnyPool, store: &EventStore, head: u64) -> Result<(), sqlx::Error> {
        // The checkpoint first: every row at or below it is committed.
        let checkpoint = psirt_projection::checkpoint(pool, PROJECTION_NAME).await?;
        if checkpoint <= head {
            return Ok(());
        }
        let mut position = head;
        loop {
            let views = readmodel::changed_since(pool, &Filter::default(), 0, position, FOLLOW_BATCH).await?;
            let full = views.len() == FOLLOW_BATCH as usize;
            let mut changes = Vec::with_capacity(views.len());
            for after in views {
                if after.last_sequence > checkpoint {
                    break;
                }
                let event = store.get(after.last_sequence).await.ok().flatten();
                position = after.last_sequence;
                changes.push(Change {
                    sequence: after.last_sequence,
                    event_type: event.as_ref().map(|e| e.event_type.clone()).unwrap_or_default(),
                    event_id: event.as_ref().and_then(|e| e.id).map(|id| id.to_string()).unwrap_or_default(),
                    occurred_at: event.as_ref().map(|e| mapping::timestamp(view::occurred_at(e))),
                    before: None,
                    after,
                });
            }
            let mut state = lock(&self.inner.state);
            if state.last_local_commit.is_some_and(|at| at.elapsed() < FOLLOW_EVERY * 2) {
                // this replica's runner took over meanwhile: it publishes
                return Ok(());
            }
            let upto = if full { position } else { checkpoint };
            self.publish(&mut state, changes, upto);
            if !full || position >= checkpoint {
                return Ok(());
            }
        }
    }
}

/// The messages of one `WatchCases` call.
pub type WatchReceiver = mpsc::Receiver<Result<triage::WatchCasesResponse, Status>>;

struct Watcher {
    filter: Filter,
    /// The caller's product scopes: a case out of them is not sent.
    scopes: psirt_domain::Scopes,
    /// Changes at or below the requested position are not sent.
    skip_upto: u64,
    /// The stream position examined so far.
    position: u64,
    /// The last position sent to the client.
    told: u64,
    tx: mpsc::Sender<Result<triage::WatchCasesResponse, Status>>,
    closing: watch::Receiver<bool>,
}

impl Watcher {
    async fn send(&mut self, kind: triage::watch_cases_response::Kind, position: u64) -> bool {
        let sent = self.tx.send(Ok(triage::WatchCasesResponse { kind: Some(kind) })).await.is_ok();
        self.told = position;
        sent
    }

    async fn checkpoint(&mut self) -> bool {
        let position = self.position;
        let checkpoint = triage::WatchCheckpoint { sequence: position, caught_up: true };
        self.send(triage::watch_cases_response::Kind::Checkpoint(checkpoint), position).await
    }

    /// Sends the change if it concerns the filter; `false` once the client is gone.
    async fn offer(&mut self, change: &Change) -> bool {
        if change.sequence <= self.skip_upto {
            return true;
        }
        self.position = self.position.max(change.sequence);
        let now = time::OffsetDateTime::now_utc();
        let mut after = change.after.clone();
        view::refresh(&mut after, now);
        let in_scope_after = crate::scope::permits(&self.scopes, &after);
        let matches_after = in_scope_after && matches(&self.filter, &after);
        let matched_before = change.before.clone().is_some_and(|mut before| {
            view::refresh(&mut before, now);
            crate::scope::permits(&self.scopes, &before) && matches(&self.filter, &before)
        });
        if !matches_after && !matched_before {
            return true;
        }
        if !in_scope_after {
            // The case left the caller's scopes (its products changed): the
            // watch learns it left, not what it is now.
            after = triage::Case {
                case_id: after.case_id,
                case_key: after.case_key,
                version: after.version,
                ..triage::Case::default()
            };
        }
        let sequence = change.sequence;
        let message = triage::CaseChange {
            sequence,
            event_type: change.event_type.clone(),
            event_id: change.event_id.clone(),
            occurred_at: change.occurred_at,
            case: Some(after),
            matches_filter: matches_after,
        };
        self.send(triage::watch_cases_response::Kind::Change(message), sequence).await
    }

    async fn end(&self, status: Status) {
        let _ = self.tx.send(Err(status)).await;
    }

    async fn run(mut self, backlog: Vec<Arc<Change>>, mut live: broadcast::Receiver<Item>) {
        for change in backlog {
            if !self.offer(&change).await {
                return;
            }
        }
        if !self.checkpoint().await {
            return;
        }
        let mut quiet_until = tokio::time::Instant::now() + HEARTBEAT;
        loop {
            let told = self.told;
            tokio::select! {
                () = self.tx.closed() => return,
                () = stopped(&mut self.closing) => {
                    let resume = self.told;
                    self.end(Status::unavailable(format!(
                        "the server is shutting down; resume with after_sequence = {resume}"
                    )))
                    .await;
                    return;
                }
                () = tokio::time::sleep_until(quiet_until) => {
                    if !self.checkpoint().await {
                        return;
                    }
                }
                item = live.recv() => match item {
                    Ok(Item::Change(change)) => {
                        if !self.offer(&change).await {
                            return;
                        }
                    }
                    Ok(Item::Checkpoint(checkpoint)) => {
                        self.position = self.position.max(checkpoint);
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let resume = self.told;
                        self.end(Status::aborted(format!(
                            "the watch fell {missed} changes behind the live changes (the client reads \
                             too slowly; watch.lag_limit); resume with after_sequence = {resume}"
                        )))
                        .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let resume = self.told;
                        self.end(Status::unavailable(format!(
                            "the server stopped following changes; resume with after_sequence = {resume}"
                        )))
                        .await;
                        return;
                    }
                },
            }
            if self.told != told {
                quiet_until = tokio::time::Instant::now() + HEARTBEAT;
            }
        }
    }
}

/// Returns once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// A `CaseFilter` checked (the same limits as `ListCases`) and in the read
/// model's terms.
pub fn check_filter(filter: triage::CaseFilter) -> Result<Filter, Status> {
    let mut bad = Vec::new();
    let mut limit = |field: &str, n: usize, what: &str| {
        if n > 20 {
            bad.push(FieldViolation::new(format!("filter.{field}"), format!("at most 20 {what}")));
        }
    };
    limit("statuses", filter.statuses.len(), "statuses");
    limit("severities", filter.severities.len(), "severities");
    limit("sla_states", filter.sla_states.len(), "SLA states");
    for (i, s) in filter.statuses.iter().enumerate() {
        if common::CaseStatus::try_from(*s).is_err() || *s == 0 {
            bad.push(FieldViolation::new(format!("filter.statuses[{i}]"), "unknown case status"));
        }
    }
    for (i, s) in filter.severities.iter().enumerate() {
        if common::SeverityRating::try_from(*s).is_err() {
            bad.push(FieldViolation::new(format!("filter.severities[{i}]"), "unknown severity rating"));
        }
    }
    for (i, s) in filter.sla_states.iter().enumerate() {
        if triage::SlaState::try_from(*s).is_err() || *s == 0 {
            bad.push(FieldViolation::new(format!("filter.sla_states[{i}]"), "unknown SLA state"));
        }
    }
    for (field, value) in [("filter.product", &filter.product), ("filter.assignee", &filter.assignee)] {
        if value.chars().count() > 200 {
            bad.push(FieldViolation::new(field, "must be at most 200 characters"));
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::InvalidArgument(bad).into());
    }
    Ok(Filter {
        statuses: filter.statuses,
        ratings: filter.severities,
        product: (!filter.product.is_empty()).then_some(filter.product),
        assignee: (!filter.assignee.is_empty()).then_some(filter.assignee),
        assigned: filter.assigned,
        embargoed: filter.embargoed,
        sla_states: filter.sla_states,
    })
}

/// Whether a view (refreshed for now) matches the filter, as `ListCases`
/// would select it.
pub fn matches(filter: &Filter, case: &triage::Case) -> bool {
    if !filter.statuses.is_empty() && !filter.statuses.contains(&case.status) {
        return false;
    }
    let rating = case.severity.as_ref().map_or(0, |s| s.rating);
    if !filter.ratings.is_empty() && !filter.ratings.contains(&rating) {
        return false;
    }
    if let Some(product) = &filter.product
        && !case.affected_products.iter().any(|p| &p.product == product)
    {
        return false;
    }
    if let Some(assignee) = &filter.assignee
        && &case.assignee != assignee
    {
        return false;
    }
    if let Some(assigned) = filter.assigned
        && case.assignee.is_empty() == assigned
    {
        return false;
    }
    if let Some(embargoed) = filter.embargoed
        && case.embargo.as_ref().is_some_and(|e| e.active) != embargoed
    {
        return false;
    }
    let clocks = [events::SlaClock::Acknowledge as i32, events::SlaClock::Triage as i32];
    let states: Vec<i32> = filter.sla_states.iter().copied().filter(|s| *s != 0).collect();
    if !states.is_empty()
        && !case.sla_clocks.iter().any(|c| clocks.contains(&c.clock) && states.contains(&c.state))
    {
        return false;
    }
    true
}

/// The case view projection, noting the cases each batch changes for the
/// watches.
pub struct WatchedCases {
    pub inner: CasesProjection,
    pub hub: WatchHub,
}

/// Every case an event may change, generously: a case that turns out
/// unchanged costs a row read, a case missed would be a change never sent.
/// Besides the case's own subject (and the other case of a duplicate mark or
/// link), any case id in field 1, 2 or 3 of another aggregate's event, which
/// is where the events of every service carry it.
fn touched(event: &RecordedEvent, out: &mut Vec<String>, seen: &mut HashSet<String>) {
    let mut add = |id: String| {
        if let Ok(id) = id.parse::<psirt_domain::CaseId>()
            && seen.insert(id.to_string())
        {
            out.push(id.to_string());
        }
    };
    if let Some(id) = event.subject.strip_prefix(mapping::SUBJECT_PREFIX) {
        add(id.to_owned());
        if psirt_eventstore::is_type::<events::CaseMarkedDuplicate>(&event.event_type) {
            if let Ok(e) = event.decode::<events::CaseMarkedDuplicate>() {
                add(e.duplicate_of_case_id);
            }
        } else if psirt_eventstore::is_type::<events::DuplicateLinked>(&event.event_type)
            && let Ok(e) = event.decode::<events::DuplicateLinked>()
        {
            add(e.other_case_id);
        }
        return;
    }
    #[derive(Clone, PartialEq, Message)]
    struct Field1 {
        #[prost(string, tag = "1")]
        id: String,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Field2 {
        #[prost(string, tag = "2")]
        id: String,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Field3 {
        #[prost(string, tag = "3")]
        id: String,
    }
    let payload = event.payload.as_ref();
    for id in [
        Field1::decode(payload).map(|f| f.id),
        Field2::decode(payload).map(|f| f.id),
        Field3::decode(payload).map(|f| f.id),
    ]
    .into_iter()
    .flatten()
    {
        add(id);
    }
}

impl Projection for WatchedCases {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn deferrable_indexes(&self) -> &'static [psirt_projection::DeferrableIndex] {
        self.inner.deferrable_indexes()
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        self.inner.apply(conn, event).await
    }

    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[RecordedEvent],
    ) -> Result<Vec<(usize, DecodeError)>, sqlx::Error> {
        // Nothing staged survives a batch that fails before its commit.
        self.hub.stage(Vec::new());
        // A rebuild replays what the watches have seen: only what is new
        // to them is noted.
        let head = self.hub.head();
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        for event in events.iter().filter(|e| e.sequence > head) {
            touched(event, &mut ids, &mut seen);
        }
        if ids.is_empty() {
            return self.inner.apply_batch(conn, events).await;
        }
        // The projection reports the cases it changed, before and after:
        // no second read of the views.
        let (undecodable, observed) = self.inner.apply_batch_observed(conn, events).await?;
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let by_sequence: HashMap<u64, &RecordedEvent> = events.iter().map(|e| (e.sequence, e)).collect();
        let mut changes = Vec::new();
        for readmodel::Observed { before: previous, after } in observed {
            if !wanted.contains(after.case_id.as_str()) {
                continue;
            }
            if previous.as_ref().is_some_and(|b| b.last_sequence >= after.last_sequence) {
                continue;
            }
            let event = by_sequence.get(&after.last_sequence);
            changes.push(Change {
                sequence: after.last_sequence,
                event_type: event.map(|e| e.event_type.clone()).unwrap_or_default(),
                event_id: event.and_then(|e| e.id).map(|id| id.to_string()).unwrap_or_default(),
                occurred_at: event.map(|e| mapping::timestamp(view::occurred_at(e))),
                before: previous,
                after,
            });
        }
        changes.sort_by(|a, b| (a.sequence, &a.after.case_id).cmp(&(b.sequence, &b.after.case_id)));
        self.hub.stage(changes);
        Ok(undecodable)
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        self.inner.reset(conn).await
    }
}

/// The case view projection of the running service, publishing its changes to
/// the watch hub; rebuilt in place through the admin API ([`psirt_kit::rebuild`]).
pub fn case_view(
    projection: ProjectionSettings,
    policy: SlaPolicy,
    pool: AnyPool,
    store: EventStore,
    hub: WatchHub,
) -> Rebuildable<WatchedCases> {
    Rebuildable::new(move || {
        let hub = hub.clone();
        ProjectionRunner::new(
            WatchedCases { inner: CasesProjection::new(policy), hub: hub.clone() },
            pool.clone(),
            store.clone(),
            projection.clone(),
        )
        .with_after_commit_hook(move |checkpoint| {
            hub.committed(checkpoint);
            false
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, status: common::CaseStatus) -> triage::Case {
        triage::Case { case_id: id.to_owned(), status: status.into(), ..Default::default() }
    }

    fn change(sequence: u64, after: triage::Case) -> Change {
        Change {
            sequence,
            event_type: String::new(),
            event_id: String::new(),
            occurred_at: None,
            before: None,
            after,
        }
    }

    #[test]
    fn filters_match_like_the_list() {
        let mut c = case("a", common::CaseStatus::Triage);
        c.assignee = "alice".to_owned();
        c.affected_products =
            vec![common::ProductVersionRange { product: "gw".to_owned(), ..Default::default() }];
        let f = |f: triage::CaseFilter| check_filter(f).expect("valid");
        assert!(matches(&f(triage::CaseFilter::default()), &c));
        assert!(matches(&f(triage::CaseFilter { statuses: vec![c.status], ..Default::default() }), &c));
        assert!(!matches(
            &f(triage::CaseFilter {
                statuses: vec![common::CaseStatus::Closed as i32],
                ..Default::default()
            }),
            &c
        ));
        assert!(matches(&f(triage::CaseFilter { severities: vec![0], ..Default::default() }), &c));
        assert!(matches(&f(triage::CaseFilter { product: "gw".to_owned(), ..Default::default() }), &c));
        assert!(!matches(&f(triage::CaseFilter { product: "x".to_owned(), ..Default::default() }), &c));
        assert!(matches(&f(triage::CaseFilter { assigned: Some(true), ..Default::default() }), &c));
        assert!(!matches(&f(triage::CaseFilter { assignee: "bob".to_owned(), ..Default::default() }), &c));
        assert!(matches(&f(triage::CaseFilter { embargoed: Some(false), ..Default::default() }), &c));
        let bad = check_filter(triage::CaseFilter { statuses: vec![0], ..Default::default() });
        assert_eq!(bad.expect_err("status 0").code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn the_buffer_replays_what_it_holds_and_refuses_older_positions() {
        let hub = WatchHub::new(WatchSettings { buffer_size: 2, ..WatchSettings::default() }, 10);
        hub.stage((11..=13).map(|s| change(s, case(&s.to_string(), common::CaseStatus::Received))).collect());
        hub.committed(13);
        assert_eq!(hub.head(), 13);
        let (backlog, position, _) = hub.subscribe(Some(11)).expect("in range");
        assert_eq!(backlog.iter().map(|c| c.sequence).collect::<Vec<_>>(), vec![12, 13]);
        assert_eq!(position, 13);
        let err = hub.subscribe(Some(10)).expect_err("evicted");
        assert_eq!(err.code(), tonic::Code::OutOfRange);
        // a replay (rebuild) publishes nothing twice
        hub.stage(vec![change(12, case("12", common::CaseStatus::Received))]);
        hub.committed(12);
        let (backlog, _, _) = hub.subscribe(Some(11)).expect("in range");
        assert_eq!(backlog.len(), 2);
    }

    #[test]
    fn the_cases_an_event_touches_are_found_wherever_it_names_them() {
        use psirt_eventstore::{Metadata, NewEvent};
        let recorded = |subject: String, message: &dyn Fn(uuid::Uuid, String) -> NewEvent| {
            RecordedEvent::from_new(&message(uuid::Uuid::now_v7(), subject), 1)
        };
        let ids = |event: &RecordedEvent| {
            let (mut out, mut seen) = (Vec::new(), HashSet::new());
            touched(event, &mut out, &mut seen);
            out
        };
        let case_id = psirt_domain::CaseId::new().to_string();
        let breached = events::SlaBreached { case_id: case_id.clone(), ..Default::default() };
        let event = recorded("psirt.evt.remediation.x".to_owned(), &|id, subject| {
            NewEvent::from_message(id, subject, &breached, Metadata::default())
        });
        assert_eq!(ids(&event), vec![case_id.clone()]);
        let ticket = events::ExternalTicketLinked { case_id: case_id.clone(), ..Default::default() };
        let event = recorded("psirt.evt.delivery.y".to_owned(), &|id, subject| {
            NewEvent::from_message(id, subject, &ticket, Metadata::default())
        });
        assert_eq!(ids(&event), vec![case_id.clone()]);
        let other = psirt_domain::CaseId::new().to_string();
        let marked =
            events::CaseMarkedDuplicate { duplicate_of_case_id: other.clone(), ..Default::default() };
        let event = recorded(format!("{}{case_id}", mapping::SUBJECT_PREFIX), &|id, subject| {
            NewEvent::from_message(id, subject, &marked, Metadata::default())
        });
        assert_eq!(ids(&event), vec![case_id.clone(), other]);
    }

    #[tokio::test]
    async fn a_watch_that_falls_behind_ends_with_aborted_and_its_resume_position() {
        let hub = WatchHub::new(WatchSettings { lag_limit: 1, ..WatchSettings::default() }, 5);
        let mut rx =
            hub.watch(triage::WatchCasesRequest { filter: None, after_sequence: None }).expect("a watch");
        let first = rx.recv().await.expect("a message").expect("ok");
        assert!(matches!(first.kind, Some(triage::watch_cases_response::Kind::Checkpoint(_))));
        // three changes at once, while the watch can take one
        hub.stage((6..=8).map(|s| change(s, case(&s.to_string(), common::CaseStatus::Received))).collect());
        hub.committed(8);
        let end = rx.recv().await.expect("the end").expect_err("aborted");
        assert_eq!(end.code(), tonic::Code::Aborted);
        assert!(end.message().contains("after_sequence = 5"), "{}", end.message());
        assert!(rx.recv().await.is_none());
        // its slot is free again
        assert!(hub.inner.permits.available_permits() == WatchSettings::default().max_watchers);
    }
}
