//! The tower layer enforcing [`AuthPolicy`] on the gRPC server. A layer rather than a tonic
//! interceptor because the decision depends on the request path, which interceptors do not
//! see. Rejections are trailers-only gRPC responses (`grpc-status` in the headers).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use super::{Access, AuthPolicy, Authenticator, Principal};
use crate::config::AuthConfig;

/// Applies authentication and the [`AuthPolicy`] to every request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Authenticator,
    policy: Arc<AuthPolicy>,
}

impl AuthLayer {
    /// Enforces `policy` with tokens validated by `authenticator`.
    pub fn new(authenticator: Authenticator, policy: AuthPolicy) -> Self {
        Self { authenticator, policy: Arc::new(policy) }
    }

    /// Builds the [`Authenticator`] from config (fetching a JWKS URL) and enforces `policy`.
    pub async fn from_config(config: &AuthConfig, policy: AuthPolicy) -> Result<Self, super::AuthSetupError> {
        Ok(Self::new(Authenticator::from_config(config).await?, policy))
    }

    /// The policy enforced.
    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    /// The authenticator used.
    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, authenticator: self.authenticator.clone(), policy: self.policy.clone() }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Authenticator,
    policy: Arc<AuthPolicy>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
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

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; keep the ready one for this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        let policy = self.policy.clone();
        // Owned copies: the request body is not `Sync`, so no reference to the request may
        // live across the await below.
        let path = req.uri().path().to_owned();
        let token = bearer_token(req.headers()).map(str::to_owned);
        Box::pin(async move {
            match authorize(&authenticator, &policy, &path, token).await {
                Ok(principal) => {
                    tracing::Span::current().record("enduser.id", principal.subject.as_str());
                    let scopes = principal.scopes.clone();
                    req.extensions_mut().insert(principal);
                    super::CALLER_SCOPES.scope(scopes, inner.call(req)).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

async fn authorize(
    authenticator: &Authenticator,
    policy: &AuthPolicy,
    path: &str,
    token: Result<String, Status>,
) -> Result<Principal, Status> {
    let access = policy.access_for(path);
    // A method missing from the policy is denied in every mode, also without
    // authentication: "none" makes every caller an admin of the methods the service
    // lists, never of the others.
    let Some(access) = access else {
        tracing::info!(method = path, "permission denied: method not in policy");
        return Err(Status::permission_denied("method not allowed"));
    };
    if authenticator.is_disabled() {
        return Ok(Principal::anonymous_with_all_roles());
    }
    if *access == Access::Public {
        return Ok(Principal::anonymous());
    }
    let token = token?;
    let principal = authenticator.authenticate(&token).await.map_err(|rejected| {
        tracing::info!(method = path, reason = rejected.0, "rejected bearer token");
        Status::unauthenticated(rejected.0)
    })?;
    match access {
        Access::Authenticated | Access::Public => Ok(principal),
        Access::AnyOf(roles) if principal.has_any_role(roles) => Ok(principal),
        Access::AnyOf(roles) => {
            let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            tracing::info!(method = path, subject = %principal.subject, roles = ?principal.roles, "permission denied");
            Err(Status::permission_denied(format!("requires one of the roles: {}", wanted.join(", "))))
        }
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Status> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
    let value = value.to_str().map_err(|_| Status::unauthenticated("malformed authorization header"))?;
    let (scheme, token) =
        value.split_once(' ').ok_or_else(|| Status::unauthenticated("malformed authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Status::unauthenticated("expected a bearer token"));
    }
    Ok(token.trim())
}
