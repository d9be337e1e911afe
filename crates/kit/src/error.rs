//! The API layer's error type and its one mapping to `tonic::Status`, with `google.rpc`
//! details (`BadRequest`, `PreconditionFailure`, `ErrorInfo`, `ResourceInfo`) so clients
//! can act on the error without parsing messages.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// `ErrorInfo.domain` of every error the PSIRT services emit.
pub const ERROR_DOMAIN: &str = "psirt";

/// One invalid field of a request (`google.rpc.BadRequest.FieldViolation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path to the field, dot-separated proto field names (`report.affected_products[0].name`).
    pub field: String,
    /// What is wrong, for a human.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// Everything an RPC handler can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; every bad field is listed.
    #[error("invalid argument: {}", describe_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The addressed resource does not exist (or the caller may not know it exists).
    #[error("{resource} {id} not found")]
    NotFound {
        /// Kind of resource (`"case"`, `"report"`).
        resource: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The resource exists already (a create with a taken id).
    #[error("{resource} {id} already exists")]
    AlreadyExists {
        /// Kind of resource.
        resource: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The command is not allowed in the resource's current state.
    #[error("{message}")]
    FailedPrecondition {
        /// What rule was violated.
        message: String,
        /// The state the resource is in (`"closed"`), when known.
        current_state: Option<String>,
    },
    /// A concurrent change won (optimistic concurrency conflict after the retry); the client
    /// may reload and retry.
    #[error("{message}")]
    Aborted {
        /// What conflicted.
        message: String,
    },
    /// No valid credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Valid credentials without the needed role or scope.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A dependency (NATS, database) is unreachable; retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A quota or limit was hit.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// A rate limit was hit; the call may be made again after `retry_after`
    /// (sent as `google.rpc.RetryInfo`).
    #[error("resource exhausted: {message}")]
    RateLimited {
        /// Which limit, for a human.
        message: String,
        /// How long to wait before the next call may pass.
        retry_after: std::time::Duration,
    },
    /// A bug or an unexpected failure. The message is logged, not returned to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe_violations(violations: &[FieldViolation]) -> String {
    violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
}

impl ApiError {
    /// One invalid field.
    pub fn invalid_argument(field: impl Into<String>, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// A missing resource.
    pub fn not_found(resource: &'static str, id: impl Into<String>) -> Self {
        ApiError::NotFound { resource, id: id.into() }
    }

    /// A command refused in the resource's current state.
    pub fn failed_precondition(message: impl Into<String>, current_state: Option<impl Into<String>>) -> Self {
        ApiError::FailedPrecondition { message: message.into(), current_state: current_state.map(Into::into) }
    }

    /// An unexpected failure; `err` is logged when converted to a status.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError::Internal(err.to_string())
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) => Code::InvalidArgument,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::AlreadyExists { .. } => Code::AlreadyExists,
            ApiError::FailedPrecondition { .. } => Code::FailedPrecondition,
            ApiError::Aborted { .. } => Code::Aborted,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::ResourceExhausted(_) | ApiError::RateLimited { .. } => Code::ResourceExhausted,
            ApiError::Internal(_) => Code::Internal,
        }
    }
}

/// A collector for field violations: validate everything, then fail once with all of them.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records a violation unless `ok`.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, description: impl Into<String>) {
        if !ok {
            self.add(field, description);
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded, else [`ApiError::InvalidArgument`].
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::InvalidArgument(self.0)) }
    }
}

fn error_info(reason: &str, metadata: HashMap<String, String>) -> ErrorDetails {
    ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata)
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let code = err.code();
        match err {
            ApiError::InvalidArgument(violations) => {
                let message = format!("invalid argument: {}", describe_violations(&violations));
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(code, message, details)
            }
            ApiError::NotFound { resource, id } => {
                let message = format!("{resource} {id} not found");
                let mut details = ErrorDetails::new();
                details.set_resource_info(resource, id.clone(), "", "not found");
                details.set_error_info(
                    "NOT_FOUND",
                    ERROR_DOMAIN,
                    HashMap::from([("resource".to_owned(), resource.to_owned()), ("id".to_owned(), id)]),
                );
                Status::with_error_details(code, message, details)
            }
            ApiError::AlreadyExists { resource, id } => {
                let message = format!("{resource} {id} already exists");
                let mut details = ErrorDetails::new();
                details.set_resource_info(resource, id.clone(), "", "already exists");
                details.set_error_info(
                    "ALREADY_EXISTS",
                    ERROR_DOMAIN,
                    HashMap::from([("resource".to_owned(), resource.to_owned()), ("id".to_owned(), id)]),
                );
                Status::with_error_details(code, message, details)
            }
            ApiError::FailedPrecondition { message, current_state } => {
                let subject = current_state.clone().unwrap_or_default();
                let mut details =
                    ErrorDetails::with_precondition_failure_violation("STATE", subject, message.clone());
                if let Some(state) = current_state {
                    details.set_error_info(
                        "FAILED_PRECONDITION",
                        ERROR_DOMAIN,
                        HashMap::from([("current_state".to_owned(), state)]),
                    );
                }
                Status::with_error_details(code, message, details)
            }
            ApiError::Aborted { message } => {
                Status::with_error_details(code, message, error_info("CONCURRENCY_CONFLICT", HashMap::new()))
            }
            ApiError::Unauthenticated(message) => Status::new(code, message),
            ApiError::PermissionDenied(message) => Status::new(code, message),
            ApiError::Unavailable(message) => Status::new(code, message),
            ApiError::ResourceExhausted(message) => {
                Status::with_error_details(code, message, error_info("RESOURCE_EXHAUSTED", HashMap::new()))
            }
            ApiError::RateLimited { message, retry_after } => {
                // Whole milliseconds, at least one: a client never retries at once.
                let wait = retry_after.max(std::time::Duration::from_millis(1));
                let wait =
                    std::time::Duration::from_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                let mut details = ErrorDetails::with_retry_info(Some(wait));
                details.set_error_info(
                    "RATE_LIMITED",
                    ERROR_DOMAIN,
                    HashMap::from([("retry_after_ms".to_owned(), wait.as_millis().to_string())]),
                );
                Status::with_error_details(code, format!("resource exhausted: {message}"), details)
            }
            ApiError::Internal(detail) => {
                // Internals (SQL, stack of causes) stay in the logs, never in the answer.
                tracing::error!(error = %detail, "internal error");
                Status::new(code, "internal error")
            }
        }
    }
}

/// One mapping of event-store failures for every service: a lost race is
/// `ABORTED` with both versions, an unreachable NATS `UNAVAILABLE`.
impl From<psirt_eventstore::StoreError> for ApiError {
    fn from(err: psirt_eventstore::StoreError) -> Self {
        use psirt_eventstore::StoreError;
        match err {
            StoreError::Conflict { subject, expected, actual } => ApiError::Aborted {
                message: format!(
                    "{subject} changed concurrently: expected version {expected}, current version {}",
                    actual.map_or_else(|| "none".to_owned(), |a| a.to_string())
                ),
            },
            StoreError::TooLarge(m) => ApiError::invalid_argument("request", format!("event too large: {m}")),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Config(m) | StoreError::Other(m) => ApiError::internal(m),
            e @ (StoreError::Missing(_) | StoreError::Mismatch { .. }) => ApiError::internal(e.to_string()),
        }
    }
}

/// What a failed command means to a caller: the repository's own failures
/// are statuses already; the aggregate's refusal (`Domain`) and the
/// decision's (`Rejected`) are the service's to map.
#[derive(Debug)]
pub enum Refusal<D, E> {
    Api(ApiError),
    Domain(D),
    Rejected(E),
}

/// Splits a failed command of the shared command path into statuses and the
/// service's own refusals; `resource` names the aggregate in messages
/// (`report`, `case`, ...).
pub fn refusal<D, E>(resource: &'static str, err: psirt_eventstore::CommandError<D, E>) -> Refusal<D, E> {
    use psirt_eventstore::CommandError;
    let id = |subject: &str| subject.rsplit('.').next().unwrap_or_default().to_owned();
    Refusal::Api(match err {
        CommandError::Domain(d) => return Refusal::Domain(d),
        CommandError::Rejected(e) => return Refusal::Rejected(e),
        CommandError::NotFound { subject } => ApiError::not_found(resource, id(&subject)),
        CommandError::WrongVersion { subject, expected, actual } => ApiError::Aborted {
            message: format!(
                "{resource} {} is at version {actual}, not the expected {expected}",
                id(&subject)
            ),
        },
        CommandError::Conflict { subject } => ApiError::Aborted {
            message: format!(
                "{resource} {} kept changing while the command was decided; retry",
                id(&subject)
            ),
        },
        CommandError::Store(e) => e.into(),
        CommandError::Decode(e) => ApiError::internal(format!("stored event does not decode: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match() {
        let cases = [
            (ApiError::invalid_argument("a", "b"), Code::InvalidArgument),
            (ApiError::not_found("case", "c1"), Code::NotFound),
            (ApiError::AlreadyExists { resource: "case", id: "c1".into() }, Code::AlreadyExists),
            (ApiError::failed_precondition("closed", Some("closed")), Code::FailedPrecondition),
            (ApiError::Aborted { message: "x".into() }, Code::Aborted),
            (ApiError::Unauthenticated("x".into()), Code::Unauthenticated),
            (ApiError::PermissionDenied("x".into()), Code::PermissionDenied),
            (ApiError::Unavailable("x".into()), Code::Unavailable),
            (ApiError::ResourceExhausted("x".into()), Code::ResourceExhausted),
            (ApiError::internal("db exploded"), Code::Internal),
        ];
        for (err, code) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            assert!(!status.message().contains("db exploded"));
        }
    }

    #[test]
    fn a_rate_limit_carries_retry_info() {
        let err = ApiError::RateLimited {
            message: "SubmitReport".into(),
            retry_after: std::time::Duration::from_micros(2_500_400),
        };
        let status = Status::from(err);
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        let retry = details.retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(std::time::Duration::from_millis(2500)));
        assert_eq!(details.error_info().expect("ErrorInfo").reason, "RATE_LIMITED");
    }
}
