//! Who may call which gRPC method: bearer-JWT authentication ([`Authenticator`]), the
//! roles a caller holds ([`Principal`]), the per-method rules ([`AuthPolicy`], deny by
//! default) and the tower layer that enforces them on the server ([`AuthLayer`]).
//!
//! Handlers read the caller with `request.extensions().get::<Principal>()`.

mod jwt;
mod layer;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

pub use psirt_domain::Scopes;
use serde_json::{Map, Value};

pub use jwt::{AuthSetupError, Authenticator, TokenRejected};
pub use layer::{AuthLayer, AuthService};

/// A role granted by the identity provider. `Admin` satisfies every requirement; no other
/// role satisfies another's (a `TrackerSync` token is not an analyst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Submits vulnerability reports and follows their status.
    Reporter,
    /// Triages cases: severity, acceptance, embargo, CVE.
    Analyst,
    /// Plans and ships remediations for affected products.
    Engineer,
    /// Everything, including administration.
    Admin,
    /// A machine identity for inbound tracker changes (Jira, ServiceNow): the notification
    /// service's inbound rules close, reopen and escalate cases in triage with it, and it
    /// may do nothing else. Claim value `tracker-sync`.
    TrackerSync,
}

impl Role {
    /// Every role: the people's in increasing privilege, then the machine identities.
    pub const ALL: [Role; 5] =
        [Role::Reporter, Role::Analyst, Role::Engineer, Role::Admin, Role::TrackerSync];

    /// The claim value naming this role (`"reporter"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reporter => "reporter",
            Role::Analyst => "analyst",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
            Role::TrackerSync => "tracker-sync",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A claim value that names no known role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// Case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The token's `sub` claim, or `"anonymous"`.
    pub subject: String,
    /// Known roles found in the roles claim (unknown values are dropped).
    pub roles: Vec<Role>,
    /// The token's `iss` claim.
    pub issuer: Option<String>,
    /// The products whose cases the caller may know of (claim
    /// `auth.scopes_claim`); admins hold every scope.
    pub scopes: Scopes,
    /// All claims of the token, for service-specific ones (e.g. product scopes).
    pub claims: Map<String, Value>,
}

tokio::task_local! {
    /// The product scopes of the caller of the gRPC call running on this task.
    static CALLER_SCOPES: Scopes;
}

/// The product scopes of the caller of the gRPC call running on this task: the
/// [`AuthLayer`] sets them around every call it lets through, so read handlers that do
/// not take the [`Principal`] know them too. [`Scopes::None`] outside a call: nothing is
/// in scope.
pub fn caller_scopes() -> Scopes {
    CALLER_SCOPES.try_with(Clone::clone).unwrap_or(Scopes::None)
}

/// Subject of the principal used when authentication is disabled or the method is public.
pub const ANONYMOUS: &str = "anonymous";

impl Principal {
    /// The caller of a public method when no token is checked: no roles.
    pub fn anonymous() -> Self {
        Self {
            subject: ANONYMOUS.to_owned(),
            roles: Vec::new(),
            issuer: None,
            scopes: Scopes::None,
            claims: Map::new(),
        }
    }

    /// The caller when authentication is disabled (`auth.mode = "none"`): every role
    /// and every product.
    pub fn anonymous_with_all_roles() -> Self {
        Self { roles: Role::ALL.to_vec(), scopes: Scopes::All, ..Self::anonymous() }
    }

    /// A service acting on its own (an SLA pass, a reaction): `subject` as the actor,
    /// admin, every product.
    pub fn system(subject: &str) -> Self {
        Self { subject: subject.to_owned(), ..Self::anonymous_with_all_roles() }
    }

    /// True when authentication did not identify the caller.
    pub fn is_anonymous(&self) -> bool {
        self.subject == ANONYMOUS && self.issuer.is_none()
    }

    /// True when the caller holds `role` or `admin`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| *r == role || *r == Role::Admin)
    }

    /// True when the caller holds any of `roles`, or `admin`.
    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        self.roles.contains(&Role::Admin) || roles.iter().any(|r| self.roles.contains(r))
    }
}

/// What a gRPC method requires of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed; the handler sees [`Principal::anonymous`].
    Public,
    /// Any valid token, whatever its roles.
    Authenticated,
    /// A valid token with one of these roles (or `admin`).
    AnyOf(Vec<Role>),
}

/// One row of a service's policy table: a full method path and the roles allowed to call
/// it (`admin` is allowed everything whatever the row says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `/package.Service/Method`.
    pub method: &'static str,
    /// The roles allowed; `admin` always is.
    pub roles: &'static [Role],
}

impl Rule {
    /// The row for `method` (`/package.Service/Method`).
    pub const fn new(method: &'static str, roles: &'static [Role]) -> Self {
        Self { method, roles }
    }

    /// True when a caller holding only `role` may call the method: `role` is listed,
    /// or is `admin`.
    pub fn allows(&self, role: Role) -> bool {
        role == Role::Admin || self.roles.contains(&role)
    }
}

/// What is wrong with a service's policy table against its contract: an RPC of the
/// `served` services (as the descriptors declare them) without exactly one row, a row
/// that names no served RPC, a row `policy` does not enforce as written, and a method
/// without a row that `policy` would not deny. Empty when the table is whole.
pub fn table_problems(served: &[&str], rules: &[Rule], policy: &AuthPolicy) -> Vec<String> {
    let rpcs: Vec<String> =
        served.iter().flat_map(|s| psirt_proto::service_rpcs(s)).map(|r| r.path()).collect();
    let mut problems = Vec::new();
    if rpcs.is_empty() {
        problems.push(format!("{served:?} serve no RPC"));
    }
    for rpc in &rpcs {
        let rows = rules.iter().filter(|r| r.method == rpc).count();
        if rows != 1 {
            problems.push(format!("{rpc} has {rows} rows, needs one"));
        }
    }
    for rule in rules {
        if !rpcs.iter().any(|rpc| rpc == rule.method) {
            problems.push(format!("{} is no RPC served", rule.method));
        }
        if policy.access_for(rule.method) != Some(&Access::AnyOf(rule.roles.to_vec())) {
            problems.push(format!("{} is not enforced as its row says", rule.method));
        }
    }
    for service in served {
        let unlisted = format!("/{service}/NoSuchMethod");
        if policy.access_for(&unlisted).is_some() {
            problems.push(format!("{unlisted} (no row) is not denied"));
        }
    }
    problems
}

/// Maps full gRPC method paths (`/psirt.intake.v1.IntakeService/SubmitReport`) to the
/// access they require. Lookup order: the exact method, then its service, then the built-in
/// public methods (`grpc.health.v1.Health/*`, `grpc.reflection.*`); anything else is denied
/// with `PERMISSION_DENIED` (fail closed).
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    methods: HashMap<String, Access>,
    services: HashMap<String, Access>,
}

impl AuthPolicy {
    /// A policy that denies every non-built-in method.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the access of one method, given as `/package.Service/Method` (the leading slash
    /// may be omitted).
    pub fn method(mut self, path: &str, access: Access) -> Self {
        self.methods.insert(normalize_path(path), access);
        self
    }

    /// The method requires one of `roles` (or `admin`).
    pub fn allow(self, path: &str, roles: &[Role]) -> Self {
        self.method(path, Access::AnyOf(roles.to_vec()))
    }

    /// Sets the access of every method of a service, given as `package.Service`, unless a
    /// method has its own entry.
    pub fn service(mut self, service: &str, access: Access) -> Self {
        self.services.insert(service.trim_matches('/').to_owned(), access);
        self
    }

    /// The access required by `path`, or `None` when the policy does not know the method
    /// (it is then denied).
    pub fn access_for(&self, path: &str) -> Option<&Access> {
        if let Some(access) = self.methods.get(path) {
            return Some(access);
        }
        let (service, _) = split_method_path(path)?;
        if let Some(access) = self.services.get(service) {
            return Some(access);
        }
        if is_builtin_public(service) {
            return Some(&Access::Public);
        }
        None
    }

    /// A policy from a table of rules: each full method path (`/package.Service/Method`)
    /// requires one of its roles (or `admin`). Services keep their table as a `const`, so
    /// tests enumerate exactly what the server enforces.
    pub fn from_rules(rules: &[Rule]) -> Self {
        rules.iter().fold(Self::new(), |policy, rule| policy.allow(rule.method, rule.roles))
    }

    /// Method paths with an explicit entry.
    pub fn methods(&self) -> impl Iterator<Item = (&str, &Access)> {
        self.methods.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Services with an entry covering all their methods.
    pub fn services(&self) -> impl Iterator<Item = (&str, &Access)> {
        self.services.iter().map(|(k, v)| (k.as_str(), v))
    }
}

fn normalize_path(path: &str) -> String {
    if path.starts_with('/') { path.to_owned() } else { format!("/{path}") }
}

/// Health checks and reflection are public so probes and `grpcurl` work without a token.
fn is_builtin_public(service: &str) -> bool {
    service == "grpc.health.v1.Health" || service.starts_with("grpc.reflection.")
}

/// Splits `/package.Service/Method` into (`package.Service`, `Method`).
pub fn split_method_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((service, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_lookup_order_and_fail_closed() {
        let policy = AuthPolicy::new()
            .allow("/psirt.a.v1.A/Submit", &[Role::Reporter])
            .service("psirt.a.v1.A", Access::AnyOf(vec![Role::Analyst]))
            .method("psirt.b.v1.B/Ping", Access::Authenticated);
        assert_eq!(policy.access_for("/psirt.a.v1.A/Submit"), Some(&Access::AnyOf(vec![Role::Reporter])));
        assert_eq!(policy.access_for("/psirt.a.v1.A/Other"), Some(&Access::AnyOf(vec![Role::Analyst])));
        assert_eq!(policy.access_for("/psirt.b.v1.B/Ping"), Some(&Access::Authenticated));
        assert_eq!(policy.access_for("/psirt.b.v1.B/Other"), None);
        assert_eq!(policy.access_for("/nope"), None);
        assert_eq!(policy.access_for("/grpc.health.v1.Health/Check"), Some(&Access::Public));
        assert_eq!(
            policy.access_for("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Some(&Access::Public)
        );
        // An explicit entry overrides a built-in public method.
        let strict = AuthPolicy::new().allow("/grpc.health.v1.Health/Check", &[Role::Admin]);
        assert_eq!(
            strict.access_for("/grpc.health.v1.Health/Check"),
            Some(&Access::AnyOf(vec![Role::Admin]))
        );
    }

    #[test]
    fn admin_satisfies_everything() {
        let admin = Principal { roles: vec![Role::Admin], ..Principal::anonymous() };
        assert!(admin.has_role(Role::Reporter));
        assert!(admin.has_any_role(&[Role::Engineer]));
        let analyst = Principal { roles: vec![Role::Analyst], ..Principal::anonymous() };
        assert!(analyst.has_any_role(&[Role::Reporter, Role::Analyst]));
        assert!(!analyst.has_role(Role::Engineer));
        assert_eq!("ADMIN".parse::<Role>(), Ok(Role::Admin));
        assert_eq!("tracker-sync".parse::<Role>(), Ok(Role::TrackerSync));
        let tracker = Principal { roles: vec![Role::TrackerSync], ..Principal::anonymous() };
        assert!(!tracker.has_role(Role::Analyst));
        assert!(!tracker.has_any_role(&[Role::Reporter, Role::Analyst, Role::Engineer]));
        assert!(tracker.has_any_role(&[Role::TrackerSync]));
        assert!(admin.has_role(Role::TrackerSync));
        let rule = Rule::new("/psirt.a.v1.A/Close", &[Role::Analyst, Role::TrackerSync]);
        assert!(rule.allows(Role::Admin) && rule.allows(Role::TrackerSync) && !rule.allows(Role::Engineer));
        assert!("root".parse::<Role>().is_err());
    }
}
