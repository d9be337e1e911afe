//! The stored form of this service's events, from `psirt_codec::remediation`.

pub use psirt_codec::remediation::*;
