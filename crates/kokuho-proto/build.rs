//! Compiles `proto/` with the vendored protoc (no system protoc needed).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos: Vec<PathBuf> = [
        "kokuho/events/v1/envelope.proto",
        "kokuho/audit/v1/events.proto",
        "kokuho/continuity/v1/continuity_service.proto",
        "kokuho/continuity/v1/events.proto",
        "kokuho/identity/v1/events.proto",
        "kokuho/identity/v1/identity_service.proto",
        "kokuho/intake/v1/events.proto",
        "kokuho/intake/v1/intake_service.proto",
        "kokuho/results/v1/results.proto",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let includes = vec![root.clone(), protoc_bin_vendored::include_path()?];
    tonic_prost_build::configure().compile_with_config(config, &protos, &includes)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
