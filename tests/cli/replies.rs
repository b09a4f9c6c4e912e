//! Model servers that never stop or go silent, end to end: the real `hal daemon` (or `hal help run` in
//! process) against the scripted server misbehaving. The run ends ERROR with a reason that names the cap and
//! the `hal.yaml` setting, and the daemon's memory stays bounded while the server streams.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hal_testmodel::{Scripted, ScriptedServer};

use crate::daemon::DaemonProcess;
use crate::runs::{commit, hal, hal_command, home_with_model};
use crate::support::{Run, Sandbox};

/// The most memory the daemon may reach while a model streams without end, in KiB.
///
/// An idle daemon on a test repo holds some tens of MiB (the runtime, the repo, the built-in isolates ready to
/// run). What one model call may hold is bounded by the caps of `limits.reply`: 256 KiB of text, 1 MiB of one
/// line or event, 256 KiB of raw body, 1 MiB of arguments, a few copies of each in flight (the parsed event,
/// its JSON value, the text forwarded to followers): well under 16 MiB. 200 MiB leaves room for allocator
/// slack on any machine, while an uncapped client reading an endless stream over loopback (hundreds of MB/s)
/// passes it within a second or two.
const MAX_DAEMON_KIB: u64 = 200 * 1024;

/// Run the `hal` help through `daemon` with `message`, checking the daemon's peak memory until the run ends.
fn run_watching_memory(sandbox: &Sandbox, repo: &Path, daemon: &DaemonProcess, message: &str) -> Run {
    let mut run = hal_command(sandbox, repo, &["help", "run", "hal", message, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hal help run");
    let started = Instant::now();
    while run.try_wait().expect("wait for hal help run").is_none() {
        let peak = daemon.peak_kib();
        if peak >= MAX_DAEMON_KIB || started.elapsed() > Duration::from_secs(120) {
            let _ = run.kill();
            panic!("the daemon reached {peak} KiB after {:?}\ndaemon log:\n{}", started.elapsed(), daemon.log());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Run::from(run.wait_with_output().expect("output of hal help run"))
}

/// Regression (issue 11): a model streaming without end grew the daemon's memory by tens of MB a second until
/// the run's `max_seconds`. Now the reply's text stops at `limits.reply.text_kb`, one line of the stream at
/// `limits.reply.line_kb`, and the run ends ERROR saying which.
#[test]
fn endless_model_stream_is_capped() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "openai");
    let daemon = DaemonProcess::start(&sandbox, &repo);
    let idle = daemon.peak_kib();

    let cases = [
        (
            Scripted::endless_text(),
            "its text is longer than 256 KiB (limits.reply.text_kb in hal.yaml raises the limit)",
        ),
        (
            Scripted::endless_line(),
            "one line of its event stream is longer than 1024 KiB (limits.reply.line_kb in hal.yaml raises the limit)",
        ),
    ];
    for (endless, reason) in cases {
        let asked = server.requests().len();
        server.push([endless]);
        let run = run_watching_memory(&sandbox, &repo, &daemon, "Tell me everything.");
        assert_eq!(run.code, 1, "ERROR exits 1: {run:?}");
        let outcome = run.json();
        assert_eq!(outcome["status"], "ERROR", "{outcome}");
        let expected = format!(
            "model `scripted` at {} sent a reply over HAL's limit, so HAL stopped reading it: ",
            server.base_url()
        );
        assert_eq!(outcome["output"], format!("{expected}{reason}"), "{outcome}");
        assert_eq!(server.requests().len(), asked + 1, "a reply over a limit is not asked for again");
        assert!(server.rejections().is_empty(), "{:?}", server.rejections());
    }
    let peak = daemon.peak_kib();
    assert!(peak < MAX_DAEMON_KIB, "the daemon idled at {idle} KiB and reached {peak} KiB");
}

/// Regression (issue 11): a model that went silent held the run until every retry had used the whole
/// `max_seconds`. Now silence longer than `limits.idle_seconds` ends it: before any byte of the reply after the
/// retries (each waits only that long), in the middle of the reply at once.
#[test]
fn stalled_stream_ends_by_idle_timeout() {
    let sandbox = Sandbox::new();
    let server = ScriptedServer::start(vec![]);
    let repo = home_with_model(&sandbox, &server, "anthropic");
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let limits = "limits:\n  max_seconds: 3600\n  idle_seconds: 1.5\n";
    commit(&sandbox, &repo, &[("hal.yaml", &format!("{settings}{limits}"))]);
    let at = format!("model `scripted` at {}", server.base_url());

    // Silence after the headers, on each of the client's five attempts.
    server.push((0..5).map(|_| Scripted::stall_after_headers()));
    let run = hal(&sandbox, &repo, &["help", "run", "hal", "hello", "--json"]);
    assert_eq!(run.code, 1, "ERROR exits 1: {run:?}");
    let outcome = run.json();
    assert_eq!(outcome["status"], "ERROR", "{outcome}");
    assert_eq!(
        outcome["output"],
        format!(
            "{at} still failing after 5 attempts: no byte of the reply came within 1.5 s of its headers \
             (limits.idle_seconds in hal.yaml raises the limit)"
        ),
        "{outcome}"
    );
    assert_eq!(server.requests().len(), 5);

    // Silence in the middle of the reply.
    server.push([Scripted::stall_mid_stream("Let me think about th"), Scripted::text("never asked")]);
    let run = hal(&sandbox, &repo, &["help", "run", "hal", "hello again", "--json"]);
    assert_eq!(run.code, 1, "ERROR exits 1: {run:?}");
    assert_eq!(
        run.json()["output"],
        format!(
            "{at} stopped sending in the middle of its reply: nothing came for 1.5 s (limits.idle_seconds in \
             hal.yaml raises the limit)"
        )
    );
    assert_eq!(server.requests().len(), 6, "a stall in the middle of a reply is not retried");
    assert!(server.rejections().is_empty(), "{:?}", server.rejections());
}
