//! The README's main job: `alcor dev` starts a 3-member cluster of real
//! processes, agents, writes the demo and shuts down cleanly; a second run
//! reuses the data directory and the agents end with the same goal states.

use std::process::Command;
use std::time::Duration;

/// Runs `alcor dev --exit-after-demo` and returns its stdout.
fn run_dev(data_dir: &std::path::Path, base_port: u16) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alcor"))
        .args([
            "dev",
            "--exit-after-demo",
            "--base-port",
            &base_port.to_string(),
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start alcor dev");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("poll alcor dev") {
            let output = child.wait_with_output().expect("collect output");
            let stdout = String::from_utf8_lossy(&output.stdout).to_string();
            assert!(
                status.success(),
                "alcor dev failed: {status}\nstdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            return stdout;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("alcor dev did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn digests(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("agent digests: "))
        .expect("digest line")
        .to_string()
}

#[test]
fn dev_runs_the_demo_and_a_second_run_reuses_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Member i listens on base+i (API) and base+100+i (Raft). Stay below Linux's
    // ephemeral range (32768+), where the other tests' OS-assigned ports live.
    let base_port = 20_000 + (std::process::id() % 2_000) as u16 * 4;
    let first = run_dev(dir.path(), base_port);
    assert!(first.contains("created 100 ports in one batch"), "{first}");
    for host in ["host-1", "host-2", "host-3"] {
        let line = first
            .lines()
            .find(|l| l.starts_with(host))
            .expect("agent line");
        assert!(line.contains("neighbors 100"), "{line}");
    }
    assert_eq!(
        first.matches("exited (exit status: 0)").count(),
        3,
        "{first}"
    );
    let second = run_dev(dir.path(), base_port);
    assert!(second.contains("reusing data"), "{second}");
    assert!(!second.contains("created 100 ports"), "{second}");
    assert_eq!(digests(&first), digests(&second));
}
