//! A default build of `alcor` has no mutation switches: it does not know
//! `--unsafe-mutation` and refuses to start when `ALCOR_UNSAFE_MUTATION` is
//! set, so a stray variable cannot turn off fsync on a production member.
//! Only built without the `unsafe-mutations` feature (mutation runs build
//! with it; see `disk_and_leadership.rs`).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{free_port, BIN};

/// How long a refusing `alcor server` may take to exit; one that is still
/// running after this accepted the switch.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(20);

/// Runs `alcor server` as a single member with `extra_args` and `env`, and
/// returns its output once it exits, or `None` (after killing it) if it is
/// still serving after [`EXIT_WAIT_MAX`].
fn server_output(extra_args: &[&str], env: &[(&str, &str)]) -> Option<Output> {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft_addr = format!("127.0.0.1:{}", free_port());
    let api_addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .arg("server")
        .arg("--insecure")
        .args(["--id", "1"])
        .arg("--data-dir")
        .arg(dir.path().join("node-1"))
        .args(["--raft-addr", &raft_addr])
        .args(["--api-addr", &api_addr])
        .args(["--initial-cluster", &format!("1={raft_addr}/{api_addr}")])
        .args(extra_args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alcor server");
    let started = Instant::now();
    while started.elapsed() < EXIT_WAIT_MAX {
        if child.try_wait().expect("poll alcor server").is_some() {
            return Some(child.wait_with_output().expect("collect output"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill alcor server");
    child.wait().expect("reap alcor server");
    None
}

#[test]
fn default_build_rejects_the_unsafe_mutation_flag_as_unknown() {
    let output = server_output(&["--unsafe-mutation", "skip-fsync"], &[])
        .expect("a default build must not start with --unsafe-mutation");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a clap usage error: {stderr}"
    );
    assert!(
        stderr.contains("unexpected argument '--unsafe-mutation'"),
        "{stderr}"
    );
}

#[test]
fn default_build_refuses_to_start_with_the_unsafe_mutation_variable_set() {
    let output = server_output(&[], &[("ALCOR_UNSAFE_MUTATION", "skip-fsync")])
        .expect("a default build must not start with ALCOR_UNSAFE_MUTATION set");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("ALCOR_UNSAFE_MUTATION is set but this build has no mutation switches"),
        "{stderr}"
    );
}
