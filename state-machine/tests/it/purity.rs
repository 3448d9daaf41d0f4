//! The state machine's dependency tree holds no runtime, network, storage, clock or
//! randomness crate. Walks Cargo.lock from the crate's normal dependencies.

use std::collections::{BTreeMap, BTreeSet};

const FORBIDDEN: &[&str] = &[
    "tokio",
    "tonic",
    "prost",
    "rocksdb",
    "librocksdb-sys",
    "openraft",
    "hyper",
    "axum",
    "rand",
    "rand_core",
    "getrandom",
    "chrono",
    "time",
    "uuid",
    "mio",
    "fastrand",
];

/// Build-time-only crates: they run in build scripts and never link into the
/// library (Cargo.lock does not mark build edges, so the walk skips them by name).
const BUILD_ONLY: &[&str] = &["cc"];

fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = line.split_once(['=', '.']) {
                if !name.trim().is_empty() {
                    out.push(name.trim().to_string());
                }
            }
        }
    }
    out
}

fn lock_graph(lock: &str) -> BTreeMap<String, Vec<String>> {
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for block in lock.split("[[package]]").skip(1) {
        let mut name = String::new();
        let mut deps = Vec::new();
        let mut in_deps = false;
        for line in block.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("name = ") {
                name = rest.trim_matches('"').to_string();
            } else if line.starts_with("dependencies = [") {
                in_deps = true;
            } else if in_deps && line == "]" {
                in_deps = false;
            } else if in_deps {
                let dep = line.trim_matches(|c| c == '"' || c == ',');
                deps.push(dep.split(' ').next().unwrap_or(dep).to_string());
            }
        }
        graph.entry(name).or_default().extend(deps);
    }
    graph
}

#[test]
fn state_machine_depends_on_no_runtime_io_clock_or_random_crate() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let lock = std::fs::read_to_string(format!("{root}/Cargo.lock")).expect("Cargo.lock");
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("manifest");
    let graph = lock_graph(&lock);
    let direct = normal_dependencies(&manifest);
    assert!(
        direct.contains(&"serde".to_string()),
        "parser found {direct:?}"
    );
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = direct
        .iter()
        .map(|d| {
            if graph.contains_key(d) {
                d.clone()
            } else {
                d.replace('_', "-")
            }
        })
        .collect();
    while let Some(name) = stack.pop() {
        if BUILD_ONLY.contains(&name.as_str()) || !seen.insert(name.clone()) {
            continue;
        }
        assert!(graph.contains_key(&name), "{name} not in Cargo.lock");
        stack.extend(graph[&name].iter().cloned());
    }
    let bad: Vec<&String> = seen
        .iter()
        .filter(|n| FORBIDDEN.contains(&n.as_str()))
        .collect();
    assert!(bad.is_empty(), "forbidden dependencies: {bad:?}");
    assert!(
        seen.contains("ipnet") && seen.len() > 3,
        "walk too small: {seen:?}"
    );
}
