//! What every kokuho process shares, written once: telemetry ([`telemetry`]), the shutdown
//! signal ([`shutdown`]), the local nats-server of `kokuho up` and of the test harness
//! ([`local_nats`]), serving gRPC services on one listener ([`grpc`]), and the contract between
//! a service and the process that runs it ([`service`]).
//!
//! Architecture invariant: no business rule lives here.

pub mod audit;
pub mod credentials;
pub mod errors;
pub mod grpc;
pub mod local_nats;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
