//! Generated protobuf messages and gRPC stubs of `proto/`. No logic lives here: services convert
//! these wire types to domain types in their `convert` module (style.md §4.3).
#![allow(unreachable_pub, clippy::all, missing_docs)]

pub mod events {
    pub mod v1 {
        tonic::include_proto!("kokuho.events.v1");
    }
}

pub mod audit {
    pub mod v1 {
        tonic::include_proto!("kokuho.audit.v1");
    }
}

pub mod continuity {
    pub mod v1 {
        tonic::include_proto!("kokuho.continuity.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("kokuho.identity.v1");
    }
}

pub mod intake {
    pub mod v1 {
        tonic::include_proto!("kokuho.intake.v1");
    }
}

pub mod results {
    pub mod v1 {
        tonic::include_proto!("kokuho.results.v1");
    }
}
