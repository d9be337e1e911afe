//! Integration tests of the service runtime, in one binary to keep link time down.

mod admin;
mod auth;
mod config;
mod database_tls;
mod error;
mod grpc_tls;
mod health;
mod limits;
mod migrate;
mod nats_backbone;
mod nats_config;
mod support;
mod telemetry;
