//! Product scopes of the caller (issue 15, point 2): a delivery is known to
//! a caller whose scopes permit one of its case's current affected products
//! (from `notification_cases`; a delivery of a case without products, or
//! without a case, only to `*` holders and admins); a subscription when its
//! products filter names a product in scope (one of all products only to
//! `*` holders and admins). Out of scope answers `NOT_FOUND` exactly like a
//! missing one, and lists leave it out.
//!
//! Commands get the caller's [`Principal`] from the API layer; the reads
//! (`ListSubscriptions`, `ListDeliveries`, `ListExternalTickets`) get its
//! scopes from [`current`], which the kit's auth layer sets around every call.

pub use psirt_kit::auth::caller_scopes as current;
