//! Product scopes of the caller (issue 15, point 2): a case is known to a
//! caller whose scopes permit one of its current affected products (a case
//! without products only to `*` holders and admins). A case out of scope
//! answers `NOT_FOUND` exactly like a missing one, and lists and watches
//! leave it out.
//!
//! Commands get the caller's [`Principal`] from the API layer; the reads
//! (`GetCase`, `ListCases`, `WatchCases`, `GetCaseTimeline`) get its scopes
//! from [`current`], which the kit's auth layer sets around every call.

use psirt_domain::Scopes;
use psirt_proto::triage;

pub use psirt_kit::auth::caller_scopes as current;

/// The current affected product names of a case view.
pub fn products(case: &triage::Case) -> Vec<&str> {
    case.affected_products.iter().map(|p| p.product.as_str()).collect()
}

/// Whether the caller may know of the case.
pub fn permits(scopes: &Scopes, case: &triage::Case) -> bool {
    scopes.permits(&products(case))
}
