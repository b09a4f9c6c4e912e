//! Load benchmark: 100 threads of 20 steps each, started at once through the daemon's API, against a model that
//! answers instantly (in process: every millisecond measured is the daemon's own). Each model turn asks for one
//! `files.write`, run in the sandbox; after nine, the model finishes. Reports steps per second, the per-step
//! overhead (time between a thread's model calls, halved: each gap holds a reply step and a tool step) at
//! p50/p95, and the process's peak memory.
//!
//! `cargo bench -p hal-daemon --bench load` (env `HAL_BENCH_THREADS`, default 100).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hal_daemon::client::Client;
use hal_daemon::protocol::{Command as DaemonCommand, Response};
use hal_daemon::{Daemon, DaemonOptions};
use hal_model::{Message, Reply, Request, ToolCall};
use hal_runner::RunError;
use hal_runner::model::{Model, ModelTurn, Models};
use hal_runner::tools::BoxFuture;

/// Tool turns per run before the model finishes: with the request, start, replies, tool steps and the finish,
/// a thread has about 20 steps.
const TOOL_TURNS: usize = 9;

/// A model that answers at once and remembers when each thread called it.
#[derive(Default)]
struct InstantModel {
    calls: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Model for InstantModel {
    fn name(&self) -> &str {
        "instant"
    }

    fn complete<'a>(
        &'a self,
        request: &'a Request,
        _on_text: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<ModelTurn, hal_runner::model::TurnError>> {
        Box::pin(async move {
            let job = request
                .messages
                .iter()
                .find_map(|m| match m {
                    Message::User { text } if text.starts_with("job ") => Some(text.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let done = request.messages.iter().filter(|m| matches!(m, Message::Tool { .. })).count();
            self.calls.lock().expect("calls").entry(job).or_default().push(Instant::now());
            let call = if done < TOOL_TURNS {
                ToolCall {
                    id: format!("c{done}"),
                    name: "files.write".into(),
                    arguments: format!(r#"{{"path": "out/{done}.txt", "content": "step {done}\n"}}"#),
                }
            } else {
                ToolCall {
                    id: "end".into(),
                    name: "finish".into(),
                    arguments: r#"{"status":"DONE","output":"ok"}"#.into(),
                }
            };
            let reply = Reply { tool_calls: vec![call], ..Reply::default() };
            Ok(ModelTurn { reply, response: None, request_bytes: 0, latency: Duration::ZERO })
        })
    }
}

struct Instantly(Arc<InstantModel>);

impl Models for Instantly {
    fn choose(&self, _: Option<&str>, _: Option<&str>) -> Result<Arc<dyn Model>, RunError> {
        Ok(self.0.clone())
    }

    fn subrun(&self) -> Arc<dyn Models> {
        Arc::new(Instantly(self.0.clone()))
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=Bench", "-c", "user.email=bench@example.com"])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn peak_memory_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let threads: usize = std::env::var("HAL_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().expect("temp dir");
    hal_store::Home::init(dir.path(), Some("bench")).expect("init");
    std::fs::create_dir_all(dir.path().join("helps")).expect("helps");
    std::fs::write(dir.path().join("helps/bench.yaml"), "description: Writes files\ncommands: [files.write]\n")
        .expect("help");
    git(dir.path(), &["add", "-A"]);
    // Signed with the key `init` set up: helps on main count only once an owner signed them.
    git(dir.path(), &["commit", "-S", "-q", "-m", "bench help"]);

    let model = Arc::new(InstantModel::default());
    let options = DaemonOptions { models: Some(Arc::new(Instantly(model.clone()))), ..DaemonOptions::default() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let path = dir.path().to_owned();
    let daemon = std::thread::spawn(move || {
        Daemon::run_until(
            &path,
            options,
            |_| {
                let _ = ready_tx.send(());
            },
            async move {
                let _ = stopped.await;
            },
        )
    });
    ready_rx.recv_timeout(Duration::from_secs(120)).expect("the daemon starts");
    let common = dir.path().join(".git");
    let client = Client::for_repo(&common).expect("client").expect("a daemon runs");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");

    let started = Instant::now();
    runtime.block_on(async {
        for n in 0..threads {
            let command = DaemonCommand::NewThread {
                purpose: None,
                actor: None,
                from: None,
                title: Some(format!("load {n}")),
                help: Some("bench".into()),
                agent: None,
                input: Some(format!("job {n}")),
                idempotency_key: None,
                started_by_run: None,
            };
            client.command(&command).await.expect("start a thread");
        }
    });
    let steps = loop {
        let Response::Threads { threads: list } =
            runtime.block_on(client.command(&DaemonCommand::ListThreads)).expect("list")
        else {
            panic!("not a list")
        };
        let done: Vec<_> =
            list.iter().filter(|t| t.title.starts_with("load ") && t.status.as_str() == "done").collect();
        if done.len() == threads {
            break done.iter().map(|t| t.steps).sum::<u64>();
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the load did not finish in 10 minutes");
        // Listing reads every changed tip under the store's lock: poll gently, not to slow what is measured.
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed().as_secs_f64();
    let metrics = runtime.block_on(client.metrics()).expect("metrics");
    let _ = stop.send(());
    daemon.join().expect("daemon thread").expect("daemon");

    let calls = model.calls.lock().expect("calls");
    let mut gaps: Vec<f64> =
        calls.values().flat_map(|times| times.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0 / 2.0)).collect();
    gaps.sort_by(f64::total_cmp);
    println!("threads: {threads}, steps: {steps}, wall: {elapsed:.2} s");
    println!("throughput: {:.0} steps/s", steps as f64 / elapsed);
    println!(
        "per-step overhead under load: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} gaps)",
        percentile(&gaps, 0.5),
        percentile(&gaps, 0.95),
        gaps.last().copied().unwrap_or(0.0),
        gaps.len()
    );
    println!("peak memory (VmHWM, daemon and bench in one process): {} MiB", peak_memory_kb() / 1024);
    let turns = metrics.lines().find(|l| l.starts_with("hal_turns_total")).unwrap_or("hal_turns_total missing");
    println!("metrics: {turns}");
}
