//! Product scopes of the caller (issue 15, point 2): a case is known to a
//! caller whose scopes permit one of its current affected products (a case
//! without products only to `*` holders and admins). A case out of scope
//! answers `NOT_FOUND` exactly like a missing one, and lists and watches
//! leave it out.
//!
//! Commands get the caller's [`Principal`] from the API layer; the reads
//! (`GetCase`, `ListCases`, `WatchCases`, `GetCaseTimeline`) get its scopes
//! from [`current`], which [`Scoped`] sets around every call of the server it
//! wraps (the principal the auth layer put on the request). Outside a served
//! call there are no scopes: nothing is in scope.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use psirt_domain::Scopes;
use psirt_kit::Principal;
use psirt_proto::{MessageLimits, triage};
use tonic::codegen::{Service, http};
use tonic::server::NamedService;

tokio::task_local! {
    static CALLER_SCOPES: Scopes;
}

/// The product scopes of the caller of the call running on this task;
/// [`Scopes::None`] outside a call served through [`Scoped`].
pub fn current() -> Scopes {
    CALLER_SCOPES.try_with(Clone::clone).unwrap_or(Scopes::None)
}

/// Runs `future` with `scopes` as the caller's (tests and in-process callers).
pub async fn with_scopes<F: Future>(scopes: Scopes, future: F) -> F::Output {
    CALLER_SCOPES.scope(scopes, future).await
}

/// The current affected product names of a case view.
pub fn products(case: &triage::Case) -> Vec<&str> {
    case.affected_products.iter().map(|p| p.product.as_str()).collect()
}

/// Whether the caller may know of the case.
pub fn permits(scopes: &Scopes, case: &triage::Case) -> bool {
    scopes.permits(&products(case))
}

/// What the audit trail records of the caller's scopes.
pub fn recorded(principal: &Principal) -> String {
    principal.scopes.to_string()
}

/// A generated gRPC server whose calls run with the caller's product scopes
/// known to the handlers ([`current`]).
#[derive(Debug, Clone)]
pub struct Scoped<S>(pub S);

impl<S: NamedService> NamedService for Scoped<S> {
    const NAME: &'static str = S::NAME;
}

impl<S: MessageLimits> MessageLimits for Scoped<S> {
    fn limit_messages(self, max_bytes: usize) -> Self {
        Self(self.0.limit_messages(max_bytes))
    }
}

impl<S, B> Service<http::Request<B>> for Scoped<S>
where
    S: Service<http::Request<B>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let scopes = request.extensions().get::<Principal>().map_or(Scopes::None, |p| p.scopes.clone());
        let call = self.0.call(request);
        Box::pin(CALLER_SCOPES.scope(scopes, call))
    }
}
