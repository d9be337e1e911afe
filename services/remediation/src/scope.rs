//! Product scopes of the caller (issue 15, point 2): a plan or an advisory
//! is known to a caller whose scopes permit one of its case's current
//! affected products (a case without products only to `*` holders and
//! admins). Out of scope answers `NOT_FOUND` exactly like a missing case, and
//! lists leave it out.
//!
//! Commands get the caller's [`Principal`] from the API layer; the reads
//! (`GetPlan`, `ListOverdue`, `ExportAdvisory`, `ListAdvisories`) get its
//! scopes from [`current`], which the kit's auth layer sets around every call.

pub use psirt_kit::auth::caller_scopes as current;
