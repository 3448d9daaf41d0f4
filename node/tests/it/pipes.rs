//! Unix manners of the binary: output into a closed pipe (`alcor ctl ... |
//! head -1`) ends the command quietly instead of panicking, and logs that
//! go to a file or a pipe carry no terminal colour codes.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use crate::cluster::{free_port, BIN};

#[test]
fn output_into_a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(BIN)
        .args(["certs", "--dir"])
        .arg(dir.path())
        .args(["--identity", "admin"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alcor certs");
    // The reader is gone before the command prints its first line (it
    // generates two keys first).
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for alcor certs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "status {:?}, stderr: {stderr}",
        output.status
    );
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    assert!(dir.path().join("admin.pem").exists(), "the work was done");
}

#[test]
fn server_logs_into_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (raft, api) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut child = Command::new(BIN)
        .args(["server", "--insecure", "--id", "1", "--data-dir"])
        .arg(dir.path().join("n1"))
        .args(["--raft-addr", &raft, "--api-addr", &api])
        .args(["--initial-cluster", &format!("1={raft}/{api}")])
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alcor server");
    let stderr = child.stderr.take().expect("stderr");
    let lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .take(5)
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lines.len(), 5, "the server logged: {lines:?}");
    assert!(
        lines.iter().all(|line| !line.contains('\u{1b}')),
        "no escape codes: {lines:?}"
    );
}
