//! Read-your-writes across the gRPC API, in one place for every service.
//!
//! - Every call runs in a [`position`](psirt_eventstore::position) scope: a
//!   command answers the stream sequence of the last event it appended (or
//!   found already stored, when it is a retry) in the response header
//!   [`POSITION`] (`psirt-position`).
//! - A call carrying the request header [`MIN_POSITION`]
//!   (`psirt-min-position`) first waits until the service's read models
//!   reflect that position ([`ReadModels`]), at most `projection.read_wait_ms`
//!   and never past the call's own deadline (`grpc-timeout`, and the server's
//!   `grpc.request_timeout`); still behind then, it answers `UNAVAILABLE`
//!   naming the lag, with a `google.rpc.RetryInfo`. A value that is not a
//!   number is `INVALID_ARGUMENT`; a position beyond the end of the stream
//!   (no write answered it) is `OUT_OF_RANGE`, at once.
//!
//! Positions are sequences of the one event stream every service shares,
//! so a position one service answered may be given to another: a read
//! there waits until that service's reactions (which append the events a
//! write causes elsewhere, e.g. triage opening the case of a new report)
//! have handled it, then until its read models hold what those reactions
//! appended. See `docs/architecture.md`, "Read your own writes".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use psirt_projection::{PositionError, ReadModelPosition};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use tower::{Layer, Service};

/// Response header: the stream position a command wrote.
pub const POSITION: &str = "psirt-position";

/// Request header: the stream position the read model must reflect before
/// the call is answered.
pub const MIN_POSITION: &str = "psirt-min-position";

/// Largest value of a position header: what the stream's sequences (and
/// the read models' BIGINT checkpoints) can hold.
const MAX_POSITION: u64 = i64::MAX as u64;

/// How long a client told `UNAVAILABLE` should wait before asking again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The read models a service's reads come from, and the reactions whose
/// events they must hold too. Empty (the default): a call never waits.
#[derive(Clone, Debug, Default)]
pub struct ReadModels {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    read_wait: Duration,
    views: Vec<ReadModelPosition>,
    reactions: Vec<ReadModelPosition>,
}

impl ReadModels {
    /// Reads wait at most `read_wait` (`projection.read_wait_ms`) for
    /// `views`, the read models they query.
    pub fn new(read_wait: Duration, views: Vec<ReadModelPosition>) -> Self {
        Self { inner: Some(Arc::new(Inner { read_wait, views, reactions: Vec::new() })) }
    }

    /// Also wait for `reactions`: projections that append events other
    /// services' writes cause (triage opening a case for a report); a read
    /// then waits for them to handle the position, and for the views to
    /// hold what they appended.
    #[must_use]
    pub fn with_reactions(self, reactions: Vec<ReadModelPosition>) -> Self {
        let Some(inner) = self.inner else { return self };
        let Inner { read_wait, views, .. } = Arc::unwrap_or_clone(inner);
        Self { inner: Some(Arc::new(Inner { read_wait, views, reactions })) }
    }

    /// Waits until the read models reflect `position`, at most
    /// `projection.read_wait_ms` and `budget`.
    pub async fn wait(&self, position: u64, budget: Duration) -> Result<(), Status> {
        let Some(inner) = &self.inner else { return Ok(()) };
        let deadline = tokio::time::Instant::now() + inner.read_wait.min(budget);
        let mut target = position;
        for reactions in &inner.reactions {
            reactions.wait_for(position, deadline).await.map_err(status)?;
        }
        for reactions in &inner.reactions {
            let caused = match reactions.caused() {
                Some(caused) => caused,
                // A standby replica does not know what the lease holder
                // appended: everything in the stream now covers it.
                None => reactions.store().stream_last_sequence().await.map_err(|e| {
                    status(PositionError::Unknown {
                        projection: reactions.name().to_owned(),
                        asked: position,
                        reason: e.to_string(),
                    })
                })?,
            };
            target = target.max(caused);
        }
        for view in &inner.views {
            view.wait_for(target, deadline).await.map_err(status)?;
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.inner.as_ref().is_none_or(|i| i.views.is_empty() && i.reactions.is_empty())
    }
}

impl Clone for Inner {
    fn clone(&self) -> Self {
        Self { read_wait: self.read_wait, views: self.views.clone(), reactions: self.reactions.clone() }
    }
}

fn status(error: PositionError) -> Status {
    match &error {
        PositionError::Behind { .. } | PositionError::Unknown { .. } => {
            let details = ErrorDetails::with_retry_info(Some(RETRY_AFTER));
            Status::with_error_details(Code::Unavailable, format!("{error}; retry later"), details)
        }
        PositionError::Beyond { .. } => {
            let details = ErrorDetails::with_bad_request_violation(MIN_POSITION, error.to_string());
            Status::with_error_details(Code::OutOfRange, error.to_string(), details)
        }
    }
}

/// The position a request asks for: `None` without the header (or 0).
pub fn min_position(headers: &http::HeaderMap) -> Result<Option<u64>, Status> {
    let Some(value) = headers.get(MIN_POSITION) else { return Ok(None) };
    let parsed =
        value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|p| *p <= MAX_POSITION);
    match parsed {
        Some(0) => Ok(None),
        Some(position) => Ok(Some(position)),
        None => {
            let description = format!("must be a stream position, a whole number from 0 to {MAX_POSITION}");
            let details = ErrorDetails::with_bad_request_violation(MIN_POSITION, description.clone());
            Err(Status::with_error_details(
                Code::InvalidArgument,
                format!("invalid argument: {MIN_POSITION}: {description}"),
                details,
            ))
        }
    }
}

/// The time a call has (its `grpc-timeout`), if it says.
fn call_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// How long a call may wait: three quarters of its time (the call's
/// deadline or the server's request timeout, the shorter), so that the
/// `UNAVAILABLE` reaches the caller before the deadline does.
fn budget(headers: &http::HeaderMap, request_timeout: Duration) -> Duration {
    let time = call_deadline(headers).map_or(request_timeout, |d| d.min(request_timeout));
    time.mul_f64(0.75)
}

/// Tower layer of [`crate::GrpcServer`]: the position scope of every call,
/// the `psirt-position` answer and the `psirt-min-position` wait.
#[derive(Clone, Debug)]
pub struct ConsistencyLayer {
    read_models: ReadModels,
    request_timeout: Duration,
}

impl ConsistencyLayer {
    /// Waits for `read_models`; `request_timeout` is the server's
    /// `grpc.request_timeout`.
    pub fn new(read_models: ReadModels, request_timeout: Duration) -> Self {
        Self { read_models, request_timeout }
    }
}

impl<S> Layer<S> for ConsistencyLayer {
    type Service = ConsistencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsistencyService { inner, layer: self.clone() }
    }
}

/// The service produced by [`ConsistencyLayer`].
#[derive(Clone, Debug)]
pub struct ConsistencyService<S> {
    inner: S,
    layer: ConsistencyLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The kit's own services (health, reflection) never wait.
fn is_builtin(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ConsistencyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_builtin(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let wait = match min_position(req.headers()) {
            Ok(wait) => wait.filter(|_| !self.layer.read_models.is_empty()),
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        let budget = budget(req.headers(), self.layer.request_timeout);
        let read_models = self.layer.read_models.clone();
        Box::pin(async move {
            if let Some(position) = wait
                && let Err(status) = read_models.wait(position, budget).await
            {
                tracing::info!(min_position = position, status = %status.message(), "read model behind");
                return Ok(status.into_http());
            }
            let (written, call) = psirt_eventstore::position::scope(inner.call(req));
            let mut response = call.await?;
            if let Some(position) = written.get() {
                response.headers_mut().insert(POSITION, HeaderValue::from(position));
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    #[test]
    fn the_min_position_header_is_a_whole_number_or_a_field_violation() {
        assert_eq!(min_position(&headers(&[])).ok(), Some(None));
        assert_eq!(min_position(&headers(&[(MIN_POSITION, "0")])).ok(), Some(None));
        assert_eq!(min_position(&headers(&[(MIN_POSITION, " 1047 ")])).ok(), Some(Some(1047)));
        for bad in ["-1", "12a", "", "1.5", "9223372036854775808"] {
            let status = min_position(&headers(&[(MIN_POSITION, bad)])).expect_err(bad);
            assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
            let violations =
                status.get_error_details().bad_request().expect("BadRequest").field_violations.clone();
            assert_eq!(violations.len(), 1);
            assert_eq!(violations[0].field, MIN_POSITION);
        }
    }

    #[test]
    fn a_wait_never_outlasts_the_call() {
        let server = Duration::from_secs(30);
        assert_eq!(budget(&headers(&[]), server), Duration::from_millis(22_500));
        assert_eq!(budget(&headers(&[("grpc-timeout", "2S")]), server), Duration::from_millis(1500));
        assert_eq!(budget(&headers(&[("grpc-timeout", "400m")]), server), Duration::from_millis(300));
        assert_eq!(budget(&headers(&[("grpc-timeout", "1H")]), server), Duration::from_millis(22_500));
        assert_eq!(budget(&headers(&[("grpc-timeout", "oops")]), server), Duration::from_millis(22_500));
    }
}
