//! The stored form of this service's events, from `psirt_codec::case`.

pub use psirt_codec::case::*;
