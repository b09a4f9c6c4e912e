//! The real `hal daemon` as a child process of a test, and what tests ask of a running daemon.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runs::{hal, hal_command};
use crate::support::Sandbox;

/// A `hal daemon` child process, stopped when dropped.
pub(crate) struct DaemonProcess {
    pub(crate) child: Child,
    log: PathBuf,
}

impl DaemonProcess {
    /// Start `hal daemon` in `repo` and wait until it serves.
    pub(crate) fn start(sandbox: &Sandbox, repo: &Path) -> DaemonProcess {
        let log = sandbox.path(&format!("daemon-{}.log", fastrand::u32(..)));
        let mut command = hal_command(sandbox, repo, &["daemon"]);
        command
            .env("RUST_LOG", "hal_daemon=debug,hal=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let mut child = command.spawn().expect("spawn hal daemon");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        let line = receiver.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!("the daemon did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        assert!(line.contains("serving"), "unexpected first line: {line}");
        DaemonProcess { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's peak resident memory so far (`VmHWM`), in KiB.
    pub(crate) fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM in /proc status");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmHWM in kB")
    }

    /// SIGTERM, and the exit code.
    pub(crate) fn stop(mut self) -> i32 {
        let status = std::process::Command::new("kill").arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success());
        self.child.wait().expect("wait").code().unwrap_or(-1)
    }

    /// SIGKILL: no chance to clean up.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `hal` in `repo` in the background, its output kept for `wait_with_output`.
pub(crate) fn spawn(sandbox: &Sandbox, repo: &Path, args: &[&str]) -> Child {
    let mut command = hal_command(sandbox, repo, args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn hal")
}

/// Wait up to 20 s for `check` to return something.
#[track_caller]
pub(crate) fn eventually<T>(what: &str, daemon: &DaemonProcess, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}\ndaemon log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn threads(sandbox: &Sandbox, repo: &Path) -> Vec<Value> {
    hal(sandbox, repo, &["thread", "list", "--json"]).ok().json().as_array().expect("threads").clone()
}

pub(crate) fn steps(sandbox: &Sandbox, repo: &Path, thread: &str) -> Vec<Value> {
    hal(sandbox, repo, &["thread", "log", thread, "--json"]).ok().json().as_array().expect("steps").clone()
}

pub(crate) fn kinds(steps: &[Value]) -> Vec<String> {
    steps.iter().map(|s| s["kind"].as_str().unwrap_or_default().to_owned()).collect()
}
