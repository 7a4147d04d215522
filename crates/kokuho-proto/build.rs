//! Compiles every `.proto` under `proto/` with the vendored protoc (no system protoc needed).
//! A new context's protos are found by themselves; the generated packages are nested modules
//! of one include file (`kokuho::<context>::v1`).

use std::path::{Path, PathBuf};

fn protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Maps in key order: the same message encodes to the same bytes every time, so a projection
    // replayed from the log is byte for byte the live one (kokuho replay --verify).
    config.btree_map(["."]);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let mut files = Vec::new();
    protos(&root.join("kokuho"), &mut files)?;
    files.sort();
    let includes = vec![root.clone(), protoc_bin_vendored::include_path()?];
    // The descriptors of every package, for gRPC reflection (a stock client lists and calls the API).
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join("descriptors.bin");
    tonic_prost_build::configure()
        .include_file("packages.rs")
        .file_descriptor_set_path(descriptors)
        .compile_with_config(config, &files, &includes)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
