//! What every kokuho process shares, written once: telemetry ([`telemetry`]), the shutdown
//! signal ([`shutdown`]), the local nats-server of `kokuho up` and of the test harness
//! ([`local_nats`]), and serving gRPC services on one listener ([`grpc`]).
//!
//! Architecture invariant: no business rule lives here.

pub mod audit;
pub mod credentials;
pub mod grpc;
pub mod local_nats;
pub mod shutdown;
pub mod telemetry;
