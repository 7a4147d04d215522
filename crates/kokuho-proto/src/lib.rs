//! Generated protobuf messages and gRPC stubs of `proto/`. No logic lives here: services convert
//! these wire types to domain types in their `convert` module (style.md §4.3). Every package
//! under `proto/kokuho/` is here as `kokuho_proto::<context>::v1`, found by the build script.
#![allow(unreachable_pub, clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/packages.rs"));

pub use kokuho::*;

/// The encoded descriptors of every package (gRPC reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
