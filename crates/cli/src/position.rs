//! Read your own writes from the command line. A command's answer carries
//! the stream position it wrote (`psirt-position`); `psirtctl` remembers
//! the last one in a small state file, per platform (the four server
//! addresses), and sends it as `psirt-min-position` with every call of the
//! next invocations, so a read shows what the previous command did (the
//! service waits for its read model to get there). `--min-position N`
//! sends N instead, `--no-wait` nothing.
//!
//! The state file: `$PSIRT_STATE`, else `$XDG_STATE_HOME/psirtctl/positions`,
//! else `~/.local/state/psirtctl/positions`; one line per platform
//! (`<position> <servers>`), the newest last, at most [`MAX_PLATFORMS`].
//! A position the stream does not have (the platform was reset and its
//! stream started again) is refused by the service with `OUT_OF_RANGE`:
//! the call is sent again without it and the position forgotten.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use tonic::body::Body;
use tower::Service;

use crate::GlobalArgs;

/// Response header: the position a command wrote.
pub const POSITION: &str = "psirt-position";

/// Request header: the position the service's read model must reach first.
pub const MIN_POSITION: &str = "psirt-min-position";

/// Most platforms the state file remembers.
pub const MAX_PLATFORMS: usize = 32;

/// Longest state file read (a file that grew otherwise is ignored).
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// The positions of one invocation: what it sends, what it was answered.
#[derive(Debug, Clone, Default)]
pub struct Session(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    send: Mutex<Option<u64>>,
    answered: AtomicU64,
    stale: AtomicBool,
}

impl Session {
    /// The position sent as `psirt-min-position`, if any.
    pub fn min_position(&self) -> Option<u64> {
        *self.0.send.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_min_position(&self, position: Option<u64>) {
        *self.0.send.lock().unwrap_or_else(PoisonError::into_inner) = position;
    }

    /// The highest position a call of this invocation answered.
    pub fn answered(&self) -> Option<u64> {
        Some(self.0.answered.load(Ordering::Acquire)).filter(|p| *p > 0)
    }

    /// Whether the service refused the position sent (beyond its stream).
    pub fn is_stale(&self) -> bool {
        self.0.stale.load(Ordering::Acquire)
    }

    fn record(&self, position: u64) {
        self.0.answered.fetch_max(position, Ordering::AcqRel);
    }

    fn forget(&self) {
        self.0.stale.store(true, Ordering::Release);
        self.set_min_position(None);
    }
}

/// The platform a position belongs to: the four server addresses.
pub fn platform(global: &GlobalArgs) -> String {
    [&global.server, &global.triage_server, &global.remediation_server, &global.notification_server]
        .map(|s| s.trim_end_matches('/'))
        .join(" ")
}

/// Where the positions are kept, if anywhere.
pub fn state_file() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(file) = var("PSIRT_STATE") {
        return Some(file);
    }
    let dir = var("XDG_STATE_HOME").or_else(|| var("HOME").map(|home| home.join(".local").join("state")))?;
    Some(dir.join("psirtctl").join("positions"))
}

fn read_lines(file: &std::path::Path) -> Vec<(u64, String)> {
    let Ok(meta) = std::fs::metadata(file) else { return Vec::new() };
    if meta.len() > MAX_STATE_BYTES {
        return Vec::new();
    }
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (position, platform) = line.split_once(' ')?;
            Some((position.parse().ok()?, platform.to_owned()))
        })
        .collect()
}

/// The position remembered for `platform`.
pub fn load(file: &std::path::Path, platform: &str) -> Option<u64> {
    read_lines(file).into_iter().rev().find(|(_, p)| p == platform).map(|(position, _)| position)
}

/// Remembers `position` for `platform` (`None`: forgets it). Best effort:
/// a state file that cannot be written costs read-your-writes, never the
/// command.
pub fn save(file: &std::path::Path, platform: &str, position: Option<u64>) {
    let mut lines: Vec<(u64, String)> = read_lines(file).into_iter().filter(|(_, p)| p != platform).collect();
    if let Some(position) = position {
        lines.push((position, platform.to_owned()));
    }
    let skip = lines.len().saturating_sub(MAX_PLATFORMS);
    let text: String = lines.iter().skip(skip).map(|(position, p)| format!("{position} {p}\n")).collect();
    let Some(dir) = file.parent() else { return };
    let _ = std::fs::create_dir_all(dir);
    let temporary = file.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&temporary, text).is_ok() && std::fs::rename(&temporary, file).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

/// The transport under every client: sends the session's
/// `psirt-min-position`, records the `psirt-position` answered, and sends
/// a call again without the position when the service says its stream
/// does not have it.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    session: Session,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, session: Session) -> Self {
        Self { inner, session }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<http::Request<Body>> for Tracked<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let session = self.session.clone();
        Box::pin(async move {
            let Some(position) = session.min_position() else {
                let response = inner.call(request).await.map_err(Into::into)?;
                return Ok(record(&session, response));
            };
            // Kept to send again without the position (a unary or
            // server-streaming call: one request message).
            let (parts, body) = request.into_parts();
            let message = collect(body).await?;
            let again = |with: Option<u64>| {
                let mut request = http::Request::new(Body::new(Full(Some(message.clone()))));
                *request.method_mut() = parts.method.clone();
                *request.uri_mut() = parts.uri.clone();
                *request.version_mut() = parts.version;
                *request.headers_mut() = parts.headers.clone();
                if let Some(position) = with {
                    request.headers_mut().insert(MIN_POSITION, http::HeaderValue::from(position));
                }
                request
            };
            let response = inner.call(again(Some(position))).await.map_err(Into::into)?;
            if !refused_position(&response) {
                return Ok(record(&session, response));
            }
            session.forget();
            std::future::poll_fn(|cx| inner.poll_ready(cx)).await.map_err(Into::into)?;
            let response = inner.call(again(None)).await.map_err(Into::into)?;
            Ok(record(&session, response))
        })
    }
}

fn record<B>(session: &Session, response: http::Response<B>) -> http::Response<B> {
    if let Some(position) = response.headers().get(POSITION).and_then(|v| v.to_str().ok()?.parse().ok()) {
        session.record(position);
    }
    response
}

/// Whether the service refused `psirt-min-position` as beyond its stream.
fn refused_position<B>(response: &http::Response<B>) -> bool {
    tonic::Status::from_header_map(response.headers()).is_some_and(|status| {
        status.code() == tonic::Code::OutOfRange
            && status.message().contains("beyond the end of the event stream")
    })
}

async fn collect(mut body: Body) -> Result<Bytes, BoxError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// A request body sent whole.
struct Full(Option<Bytes>);

impl http_body::Body for Full {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_keeps_the_last_position_per_platform() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("state").join("positions");
        assert_eq!(load(&file, "a"), None);
        save(&file, "a", Some(7));
        save(&file, "b", Some(3));
        save(&file, "a", Some(12));
        assert_eq!((load(&file, "a"), load(&file, "b")), (Some(12), Some(3)));
        save(&file, "a", None);
        assert_eq!(load(&file, "a"), None);
        for i in 0..40 {
            save(&file, &format!("p{i}"), Some(i));
        }
        assert_eq!(load(&file, "b"), None, "the oldest platforms are dropped");
        assert_eq!(load(&file, "p39"), Some(39));
        assert_eq!(std::fs::read_to_string(&file).expect("file").lines().count(), MAX_PLATFORMS);
    }
}
