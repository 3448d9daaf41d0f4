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
    write_method_paths()?;
    Ok(())
}

/// Writes `grpc_methods.rs`: every gRPC method path (`/package.Service/
/// Method`) the generated code routes, sorted, as `GRPC_METHODS`. They are
/// read from the generated code itself, so the list cannot drift from the
/// `.proto` files.
fn write_method_paths() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let target = out.join("grpc_methods.rs");
    let mut paths = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        if path == target || path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let code = std::fs::read_to_string(&path)?;
        for literal in code.split('"').skip(1).step_by(2) {
            if is_method_path(literal) {
                paths.insert(literal.to_string());
            }
        }
    }
    if paths.is_empty() {
        return Err("no gRPC method paths in the generated code".into());
    }
    let mut text = String::from("/// Every gRPC method path of the generated services, sorted.\n");
    text.push_str("pub const GRPC_METHODS: &[&str] = &[\n");
    for path in &paths {
        text.push_str(&format!("    {path:?},\n"));
    }
    text.push_str("];\n");
    std::fs::write(target, text)?;
    Ok(())
}

/// `/package.Service/Method`: one leading slash, a dotted service name, a
/// method name, nothing else.
fn is_method_path(literal: &str) -> bool {
    let Some(rest) = literal.strip_prefix('/') else {
        return false;
    };
    let Some((service, method)) = rest.split_once('/') else {
        return false;
    };
    let word = |s: &str, extra: char| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == extra)
    };
    service.contains('.') && word(service, '.') && word(method, '_')
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
