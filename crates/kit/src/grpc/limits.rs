//! `grpc.max_message_bytes` on every served method: [`ServiceRoutes`] sets it as the decoding
//! and encoding limit of each generated server it registers, and [`MessageLimitLayer`]
//! answers an oversized message with `RESOURCE_EXHAUSTED` (tonic says `OUT_OF_RANGE`) and
//! lets list handlers size their pages ([`crate::request::PageBytes::current`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use psirt_proto::MessageLimits;
use tonic::Status;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tower::{Layer, Service};

tokio::task_local! {
    /// `grpc.max_message_bytes` of the server handling the current call.
    static MAX_MESSAGE_BYTES: usize;
}

/// `grpc.max_message_bytes` of the server whose call is running on this task, if any.
pub(crate) fn current_max_message_bytes() -> Option<usize> {
    MAX_MESSAGE_BYTES.try_with(|max| *max).ok()
}

type AddService = Box<dyn FnOnce(&mut RoutesBuilder, usize) + Send>;

/// A service's own gRPC servers, registered with the kit so that each gets
/// `grpc.max_message_bytes` as its decoding and encoding limit when
/// [`crate::GrpcServer::serve`] starts (tonic sets the limits per generated server; a
/// plain [`Routes`] would keep tonic's defaults: 4 MiB in, unlimited out).
///
/// ```ignore
/// let routes = ServiceRoutes::new()
///     .add_service(IntakeServiceServer::new(api))
///     .add_service(AdminServiceServer::new(admin));
/// grpc.serve(routes, auth, &[psirt_proto::FILE_DESCRIPTOR_SET], &[...], shutdown)
/// ```
#[derive(Default)]
pub struct ServiceRoutes {
    services: Vec<AddService>,
    /// What a call with `psirt-min-position` waits for ([`crate::consistency`]).
    read_models: crate::ReadModels,
}

impl std::fmt::Debug for ServiceRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRoutes").field("services", &self.services.len()).finish()
    }
}

impl ServiceRoutes {
    /// No services yet (the kit's health and reflection are always added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a generated server of `psirt-proto`.
    #[must_use]
    pub fn add_service<S>(mut self, server: S) -> Self
    where
        S: MessageLimits
            + Service<Request<tonic::body::Body>, Response = Response<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.services.push(Box::new(move |routes: &mut RoutesBuilder, max: usize| {
            routes.add_service(server.limit_messages(max));
        }));
        self
    }

    /// The read models the services' reads come from: a call carrying
    /// `psirt-min-position` waits for them ([`crate::consistency`]).
    #[must_use]
    pub fn read_models(mut self, read_models: crate::ReadModels) -> Self {
        self.read_models = read_models;
        self
    }

    /// What a call with `psirt-min-position` waits for.
    pub(crate) fn waits_for(&self) -> crate::ReadModels {
        self.read_models.clone()
    }

    /// The routes, every server limited to `max_message_bytes`.
    pub(crate) fn build(self, max_message_bytes: usize) -> Routes {
        let mut builder = RoutesBuilder::default();
        for add in self.services {
            add(&mut builder, max_message_bytes);
        }
        builder.routes()
    }
}

/// Tonic's messages for a message over the limit (`OUT_OF_RANGE`), request and response.
const DECODED_TOO_LARGE: &str = "Error, decoded message length too large";
const ENCODED_TOO_LARGE: &str = "Error, encoded message length too large";

/// `RESOURCE_EXHAUSTED` for tonic's `OUT_OF_RANGE` of an oversized message (what the gRPC
/// specification asks for "message larger than max size"); `None` for any other status,
/// which is left as the handler gave it.
pub(crate) fn oversized_message_status(status: &Status) -> Option<Status> {
    if status.code() != tonic::Code::OutOfRange {
        return None;
    }
    let message = status.message();
    let what = if message.starts_with(DECODED_TOO_LARGE) {
        "request"
    } else if message.starts_with(ENCODED_TOO_LARGE) {
        "response"
    } else {
        return None;
    };
    let detail = message.split_once(": ").map_or(message, |(_, detail)| detail);
    Some(Status::resource_exhausted(format!(
        "{what} message larger than the server's grpc.max_message_bytes ({detail})"
    )))
}

/// Rewrites the status in `headers` (a trailers-only response or the trailers) when it is
/// tonic's oversized-message `OUT_OF_RANGE`.
fn map_headers(headers: &mut HeaderMap) {
    if headers.get("grpc-status").is_none_or(|code| code != "11") {
        return;
    }
    // Only the status and its message: the details of another status are not ours to parse.
    let mut status_only = HeaderMap::new();
    for name in ["grpc-status", "grpc-message"] {
        if let Some(value) = headers.get(name) {
            status_only.insert(name, value.clone());
        }
    }
    let Some(mapped) = Status::from_header_map(&status_only).as_ref().and_then(oversized_message_status)
    else {
        return;
    };
    headers.remove("grpc-status-details-bin");
    if mapped.add_header(headers).is_err() {
        headers.insert("grpc-status", HeaderValue::from(tonic::Code::ResourceExhausted as i32));
        headers.remove("grpc-message");
    }
}

/// Tower layer of [`crate::GrpcServer`]: makes `grpc.max_message_bytes` known to the
/// handlers ([`crate::request::PageBytes::current`]) and answers an oversized request or
/// response message with `RESOURCE_EXHAUSTED` instead of tonic's `OUT_OF_RANGE`.
#[derive(Clone, Copy, Debug)]
pub struct MessageLimitLayer {
    max_message_bytes: usize,
}

impl MessageLimitLayer {
    /// The layer of a server limited to `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes }
    }
}

impl<S> Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit { inner, max_message_bytes: self.max_message_bytes }
    }
}

/// The service produced by [`MessageLimitLayer`].
#[derive(Clone, Debug)]
pub struct MessageLimit<S> {
    inner: S,
    max_message_bytes: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody> Service<Request<ReqBody>> for MessageLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let future = self.inner.call(req);
        Box::pin(MAX_MESSAGE_BYTES.scope(self.max_message_bytes, async move {
            let mut response = future.await?;
            // Trailers-only response: the request was refused before the handler ran.
            map_headers(response.headers_mut());
            Ok(response.map(|body| tonic::body::Body::new(MappedTrailers { inner: body })))
        }))
    }
}

/// A response body whose trailers get [`map_headers`] (an oversized response message).
struct MappedTrailers {
    inner: tonic::body::Body,
}

impl http_body::Body for MappedTrailers {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(polled.map(|frame| {
            frame.map(|frame| match frame.into_trailers() {
                Ok(mut trailers) => {
                    map_headers(&mut trailers);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handlers_see_the_servers_message_limit() {
        use crate::request::PageBytes;
        assert_eq!(current_max_message_bytes(), None);
        let budget = MAX_MESSAGE_BYTES.scope(10_000, async { PageBytes::current().budget() }).await;
        assert_eq!(budget, 10_000 / crate::request::PAGE_BYTES_DIVISOR);
    }

    #[test]
    fn only_tonics_oversized_message_becomes_resource_exhausted() {
        let decoded = Status::out_of_range(
            "Error, decoded message length too large: found 5242893 bytes, the limit is: 4194304 bytes",
        );
        let mapped = oversized_message_status(&decoded).expect("mapped");
        assert_eq!(mapped.code(), tonic::Code::ResourceExhausted);
        assert!(mapped.message().starts_with("request message larger"), "{}", mapped.message());
        assert!(mapped.message().contains("found 5242893 bytes"), "{}", mapped.message());
        let encoded = Status::out_of_range(
            "Error, encoded message length too large: found 9 bytes, the limit is: 8 bytes",
        );
        assert!(oversized_message_status(&encoded).expect("mapped").message().starts_with("response"));
        // A handler's own OUT_OF_RANGE, and other codes, are left alone.
        assert!(oversized_message_status(&Status::out_of_range("page past the end")).is_none());
        assert!(oversized_message_status(&Status::invalid_argument(DECODED_TOO_LARGE)).is_none());
    }

    fn rendered(status: &Status) -> HeaderMap {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).expect("headers");
        headers
    }

    #[test]
    fn headers_are_rewritten_only_for_the_oversized_case() {
        let mut headers = rendered(&Status::out_of_range(format!(
            "{DECODED_TOO_LARGE}: found 2 bytes, the limit is: 1 bytes"
        )));
        map_headers(&mut headers);
        assert_eq!(headers["grpc-status"], "8");
        let status = Status::from_header_map(&headers).expect("status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("grpc.max_message_bytes"), "{}", status.message());

        let mut other = rendered(&Status::out_of_range("year out of range"));
        map_headers(&mut other);
        assert_eq!(other["grpc-status"], "11");
        let mut ok = rendered(&Status::ok(""));
        map_headers(&mut ok);
        assert_eq!(ok["grpc-status"], "0");
    }
}
