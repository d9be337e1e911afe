//! The stored form of this service's events, from `psirt_codec::notification`.

pub use psirt_codec::notification::*;
