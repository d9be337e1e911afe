//! What a command can fail with, how it is shown on stderr, and the exit code
//! it maps to: scripts branch on the code (usage, server refusal, no server)
//! without parsing messages.

use std::io::{self, Write};

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::output::sanitize_line;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the server answered with an error (or output failed).
pub const EXIT_SERVER: u8 = 1;
/// Exit code: bad command line or unreadable input file (clap uses 2 too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the server could not be reached.
pub const EXIT_CONNECT: u8 = 3;

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// The command line or an input it names is unusable.
    Usage(String),
    /// No connection to the server.
    Connect { server: String, reason: String },
    /// The server answered with an error status.
    Rpc(Status),
    /// Writing the result failed.
    Output(io::Error),
    /// Anything else (e.g. a response that cannot be rendered).
    Other(anyhow::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Connect { .. } => EXIT_CONNECT,
            CliError::Rpc(status) if is_local_transport_failure(status) => EXIT_CONNECT,
            CliError::Rpc(_) | CliError::Output(_) | CliError::Other(_) => EXIT_SERVER,
        }
    }

    /// Writes the error for a human: `error: <what>`, and for a bad request
    /// one indented line per invalid field.
    pub fn print(&self, w: &mut dyn Write) -> io::Result<()> {
        match self {
            CliError::Usage(message) => writeln!(w, "error: {message}"),
            CliError::Connect { server, reason } => {
                writeln!(w, "error: cannot connect to {server}: {reason}")
            }
            CliError::Rpc(status) => print_status(w, status),
            CliError::Output(e) => writeln!(w, "error: cannot write output: {e}"),
            CliError::Other(e) => writeln!(w, "error: {e:#}"),
        }
    }
}

impl From<Status> for CliError {
    fn from(status: Status) -> Self {
        CliError::Rpc(status)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Output(e)
    }
}

/// Whether a failed command may have been applied anyway: after a timeout or
/// a broken connection the server may have stored it before the answer got
/// lost. Repeating it with the same request id is then safe.
pub fn may_have_been_applied(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal
    )
}

/// A status the client made up because the connection broke (the server's
/// own statuses carry no local error source).
fn is_local_transport_failure(status: &Status) -> bool {
    status.code() == Code::Unavailable && std::error::Error::source(status).is_some()
}

fn print_status(w: &mut dyn Write, status: &Status) -> io::Result<()> {
    // Server messages may quote client input; keep them on one line.
    let message = sanitize_line(status.message());
    if message.is_empty() {
        writeln!(w, "error: {}", code_name(status.code()))?;
    } else {
        writeln!(w, "error: {}: {message}", code_name(status.code()))?;
    }
    if let Some(bad_request) = status.get_details_bad_request() {
        for violation in &bad_request.field_violations {
            writeln!(w, "  {}: {}", sanitize_line(&violation.field), sanitize_line(&violation.description))?;
        }
    }
    Ok(())
}

pub use psirt_proto::code_name;

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, FieldViolation};

    fn printed(err: &CliError) -> String {
        let mut buf = Vec::new();
        err.print(&mut buf).expect("write to a Vec");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn bad_request_lists_each_field() {
        let details = ErrorDetails::with_bad_request(vec![
            FieldViolation::new("title", "title must not be empty"),
            FieldViolation::new("channel", "channel is required"),
        ]);
        let status = Status::with_error_details(Code::InvalidArgument, "invalid argument", details);
        let err = CliError::from(status);
        assert_eq!(err.exit_code(), EXIT_SERVER);
        assert_eq!(
            printed(&err),
            "error: INVALID_ARGUMENT: invalid argument\n  title: title must not be empty\n  channel: channel is required\n"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(CliError::Connect { server: "s".into(), reason: "r".into() }.exit_code(), EXIT_CONNECT);
        assert_eq!(CliError::from(Status::not_found("gone")).exit_code(), EXIT_SERVER);
        // A server-sent UNAVAILABLE (e.g. its database is down) is a server error.
        assert_eq!(CliError::from(Status::unavailable("db down")).exit_code(), EXIT_SERVER);
        assert_eq!(
            printed(&CliError::from(Status::not_found("report x not found"))),
            "error: NOT_FOUND: report x not found\n"
        );
    }
}
