//! Compiles every `.proto` file under `proto/` into Rust with tonic + prost.
//!
//! The directory is walked (sorted, so output is deterministic) rather than
//! listing files by hand: adding a new package only needs a new file plus a
//! `pub mod` in `src/lib.rs`. protoc comes from `protoc-bin-vendored`, so no
//! system package is required.

use std::path::{Path, PathBuf};

/// The root that `import` statements are resolved against.
const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Edition 2021: set_var is safe; build scripts are single-threaded here.
    std::env::set_var("PROTOC", protoc);

    let mut protos = Vec::new();
    collect_protos(Path::new(PROTO_ROOT), &mut protos)?;
    protos.sort();
    if protos.is_empty() {
        return Err(format!("no .proto files under {PROTO_ROOT}/").into());
    }

    // A directory entry makes cargo rerun when any file below it changes,
    // including files that are added later.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    // The push stream gets its own codec (small buffers: a node holds one
    // stream per connected agent); every other service uses prost's.
    let (push, rest): (Vec<PathBuf>, Vec<PathBuf>) = protos
        .into_iter()
        .partition(|p| p.starts_with(Path::new(PROTO_ROOT).join("alcor/push")));
    let includes = [PathBuf::from(PROTO_ROOT)];
    // The encoded descriptors of the compiled files, for gRPC server
    // reflection (`src/lib.rs`: `FILE_DESCRIPTOR_SETS`); one set per call.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    if !rest.is_empty() {
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .file_descriptor_set_path(out_dir.join("alcor_descriptor_set.bin"))
            .compile_protos(&rest, &includes)?;
    }
    if !push.is_empty() {
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .file_descriptor_set_path(out_dir.join("alcor_push_descriptor_set.bin"))
            .codec_path("crate::codec::PushCodec")
            .compile_protos(&push, &includes)?;
    }
    Ok(())
}

/// Appends every `*.proto` file below `dir` (recursively) to `out`.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
