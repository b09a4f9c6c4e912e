//! Runner overhead: what a step costs apart from the model, as a thread grows.
//!
//! `cargo bench -p hal-runner --bench runner` (set `HAL_BENCH_SCALE=0.1` for a quick run, `HAL_BENCH_DIR` to
//! choose the file system). The model is a recording that answers at once, so the figures are everything else:
//! building the prompt from the thread's window, encoding the request, committing each step, dispatching the
//! tool call (an in-process `files.write` into the thread's tree; the sandbox's own cost is measured by
//! `cargo bench -p hal-sandbox`). Each run is five steps: the request, a reply calling
//! `files.write`, the tool step, a reply with the answer, and the finish. Prints a Markdown report.

#![allow(unsafe_code)] // set_var before any thread starts; see the SAFETY comment.
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hal_model::{Reply, ToolCall};
use hal_runner::model::{Models, Recording};

#[path = "../tests/support/write_tool.rs"]
mod write_tool;
use hal_runner::{Catalog, Runner, SharedHome};
use hal_store::{Home, ThreadRef};

const STEPS_PER_RUN: u64 = 5;
/// Runs measured at each checkpoint.
const MEASURED_RUNS: u64 = 40;

/// CPU time of the calling thread (the runner runs on a current-thread runtime), from the scheduler's account.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let nanos: u64 = text.split_whitespace().next().and_then(|n| n.parse().ok()).expect("cpu ns");
    Duration::from_nanos(nanos)
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=Bench", "-c", "user.email=bench@example.com"])
        .arg("-C")
        .arg(repo)
        .args(args)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?} failed");
}

/// The replies of one run: a `files.write` call, then a 200-character answer.
fn replies(run: u64) -> Vec<Reply> {
    let content = format!("note {run}: {}", "lorem ipsum ".repeat(16));
    let arguments = serde_json::json!({"path": format!("notes/{}.md", run % 100), "content": content}).to_string();
    vec![
        Reply {
            tool_calls: vec![ToolCall { id: format!("call_{run}"), name: "files.write".into(), arguments }],
            ..Reply::default()
        },
        Reply {
            text: format!("Noted as notes/{}.md. {}", run % 100, "dolor sit amet ".repeat(12)),
            ..Reply::default()
        },
    ]
}

fn runner(dir: &Path) -> Runner {
    let home = Home::open(dir).expect("open");
    let catalog = Catalog::load(&home).expect("catalog");
    Runner::new(SharedHome::new(home), Arc::new(catalog), write_tool::toolbox())
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    thread: ThreadRef,
    next_run: u64,
}

impl Bench {
    /// Do `runs` runs with `runner`; returns (cpu, wall).
    fn runs(&mut self, runner: &Runner, runs: u64) -> (Duration, Duration) {
        let replies: Vec<Reply> = (self.next_run..self.next_run + runs).flat_map(replies).collect();
        let models: Arc<dyn Models> = Arc::new(Arc::new(Recording::new(replies, Vec::new())));
        let (cpu, wall) = (thread_cpu(), Instant::now());
        for run in self.next_run..self.next_run + runs {
            let input = format!("Please note item {run} for me.");
            let outcome =
                self.runtime.block_on(runner.run(models.clone(), &self.thread, "bench", "noter", &input)).expect("run");
            assert_eq!(outcome.status, hal_runner::Status::Done);
        }
        self.next_run += runs;
        (thread_cpu() - cpu, wall.elapsed())
    }
}

fn main() {
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe { std::env::set_var(hal_store::MAINTENANCE_ENV, "off") };
    let scale: f64 = std::env::var("HAL_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let base = std::env::var_os("HAL_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::Builder::new().prefix("hal-runner-bench-").tempdir_in(&base).expect("temp dir");
    Home::init(dir.path(), Some("bench")).expect("init");
    std::fs::create_dir(dir.path().join("helps")).expect("helps dir");
    std::fs::write(
        dir.path().join("helps/noter.yaml"),
        "description: Takes notes\ncommands: [files]\ninstructions:\n  - Write each note you are given to notes/.\n",
    )
    .expect("help");
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "noter"]);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let thread = Home::open(dir.path()).expect("open").new_thread("bench", None, Some("bench")).expect("thread");
    let mut bench = Bench { runtime, thread, next_run: 0 };
    let warm = runner(dir.path());
    let checkpoints: Vec<u64> = [10u64, 1_000, 10_000]
        .iter()
        .map(|&steps| if steps > 10 { ((steps as f64 * scale) as u64).max(100) } else { steps })
        .collect();

    println!(
        "| thread length (steps) | warm runner: CPU ms/step | wall ms/step | cold run (new runner): wall ms/run |"
    );
    println!("|---:|---:|---:|---:|");
    let mut steps = 1; // the start step
    for checkpoint in checkpoints {
        let growing = checkpoint.saturating_sub(steps) / STEPS_PER_RUN;
        if growing > 0 {
            bench.runs(&warm, growing);
            steps += growing * STEPS_PER_RUN;
        }
        let (cpu, wall) = bench.runs(&warm, MEASURED_RUNS);
        let measured = (MEASURED_RUNS * STEPS_PER_RUN) as f64;
        // A cold run reads the thread's window back from its commits, as one `hal help run` process does.
        let cold_runs = 5;
        let mut cold = Duration::ZERO;
        for _ in 0..cold_runs {
            let fresh = runner(dir.path());
            cold += bench.runs(&fresh, 1).1;
        }
        println!(
            "| {} | {:.3} | {:.3} | {:.2} |",
            steps,
            cpu.as_secs_f64() * 1000.0 / measured,
            wall.as_secs_f64() * 1000.0 / measured,
            cold.as_secs_f64() * 1000.0 / cold_runs as f64
        );
        steps += (MEASURED_RUNS + cold_runs) * STEPS_PER_RUN;
    }
    println!(
        "\nThread length is counted before each measured batch of {MEASURED_RUNS} runs ({STEPS_PER_RUN} steps each)."
    );
}
