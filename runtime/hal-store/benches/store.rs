//! Storage benchmark: what a step costs as threads grow, and what listing costs as threads multiply.
//!
//! `cargo bench -p hal-store --bench store` (set `HAL_BENCH_SCALE=0.1` for a quick run). Prints a Markdown
//! report for BENCHMARKS.md. Background maintenance is off so that sizes before and after `git gc` can be
//! compared; the figures are for the library (no process start-up).

#![allow(unsafe_code)] // clock_gettime and set_var; see the SAFETY comments.
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hal_store::Home;

const ACTOR: &str = "bench";
/// Steps averaged around each checkpoint.
const WINDOW: u64 = 500;

/// CPU time used by this process so far.
fn cpu_time() -> Duration {
    let mut spec = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `spec` is a valid, writable timespec and CLOCK_PROCESS_CPUTIME_ID is supported on Linux.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut spec) };
    assert_eq!(status, 0, "clock_gettime failed");
    Duration::new(spec.tv_sec as u64, spec.tv_nsec as u32)
}

/// CPU and wall time of a stretch of work.
struct Cost {
    cpu: Duration,
    wall: Duration,
}

fn measure(work: impl FnOnce()) -> Cost {
    let (cpu, wall) = (cpu_time(), Instant::now());
    work();
    Cost { cpu: cpu_time() - cpu, wall: wall.elapsed() }
}

fn per(cost: &Cost, count: u64) -> (f64, f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / count as f64;
    (ms(cost.cpu), ms(cost.wall))
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git").arg("-C").arg(repo).args(args).status().expect("run git");
    assert!(status.success(), "git {args:?} failed");
}

/// Bytes allocated on disk (blocks, as `du` counts them) under `path`.
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

/// Close `home`, run `git gc` on it and print the size of `.git` before and after.
fn gc_and_report_size(home: Home, label: &str) {
    let dir = home.path().to_owned();
    drop(home);
    let before = disk_usage(&dir.join(".git"));
    git(&dir, &["gc", "--quiet"]);
    let after = disk_usage(&dir.join(".git"));
    println!(
        "| {label}: .git size before / after `git gc` | {:.1} MB / {:.1} MB |",
        before as f64 / 1e6,
        after as f64 / 1e6
    );
}

fn fresh_home(root: &Path, name: &str) -> Home {
    let dir = root.join(name);
    Home::init(&dir, Some(ACTOR)).expect("init");
    Home::open(&dir).expect("open")
}

/// A 200-byte message, like a short chat turn.
fn message(n: u64) -> String {
    let mut text = format!("message {n}: ");
    while text.len() < 200 {
        text.push_str("lorem ipsum ");
    }
    text.truncate(200);
    text
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    // SAFETY: no other threads exist yet.
    unsafe { std::env::set_var(hal_store::MAINTENANCE_ENV, "off") };
    let scale: f64 = std::env::var("HAL_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let scaled = |n: u64| ((n as f64 * scale) as u64).max(WINDOW);
    let root = tempfile::Builder::new().prefix("hal-bench-").tempdir().expect("temp dir");
    println!("| measurement | figure |\n| --- | --- |");
    // `HAL_BENCH_ONLY=signing` measures signing alone.
    if std::env::var("HAL_BENCH_ONLY").is_ok_and(|only| only == "signing") {
        signing(root.path(), &scaled);
        return;
    }
    // `HAL_BENCH_ONLY=records` measures the no-replay records alone.
    if std::env::var("HAL_BENCH_ONLY").is_ok_and(|only| only == "records") {
        records(root.path(), &scaled);
        return;
    }

    // 1. One thread growing to 100k steps: cost per step near 1k, 10k and 100k.
    let home = fresh_home(root.path(), "long");
    let thread = home.new_thread(ACTOR, None, Some("long thread")).expect("thread");
    let mut checkpoints: Vec<u64> =
        [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000].into_iter().map(scaled).collect();
    checkpoints.dedup();
    let mut step = 1; // the start step
    let mut results = Vec::new();
    for &checkpoint in &checkpoints {
        while step + WINDOW < checkpoint {
            step = home.say(ACTOR, &thread.id, &message(step)).expect("say").step;
        }
        let cost = measure(|| {
            while step < checkpoint {
                step = home.say(ACTOR, &thread.id, &message(step)).expect("say").step;
            }
        });
        let (cpu, wall) = per(&cost, WINDOW);
        println!("| one thread, step {checkpoint}: per-step CPU / wall | {cpu:.3} ms / {wall:.3} ms |");
        results.push(cpu);
    }
    let growth = results.last().expect("checkpoints") / results[0];
    let last = checkpoints.last().expect("checkpoints");
    println!("| one thread: CPU per step at step {last} / at step {} | {growth:.2}x |", checkpoints[0]);
    gc_and_report_size(home, &format!("one thread, {last} steps"));

    // 2. 100 threads appended round-robin, 10k steps in all.
    let home = fresh_home(root.path(), "round-robin");
    let threads: Vec<_> =
        (0..100).map(|n| home.new_thread(ACTOR, None, Some(&format!("thread {n}"))).expect("thread")).collect();
    let total = scaled(10_000);
    let cost = measure(|| {
        for n in 0..total {
            let thread = &threads[(n % 100) as usize];
            home.say(ACTOR, &thread.id, &message(n)).expect("say");
        }
    });
    let (cpu, wall) = per(&cost, total);
    println!("| 100 threads round-robin, {total} steps: per-step CPU / wall | {cpu:.3} ms / {wall:.3} ms |");
    gc_and_report_size(home, &format!("100 threads, {total} steps"));

    // 3. Listing 10,000 threads.
    let home = fresh_home(root.path(), "many");
    let count = scaled(10_000);
    let cost = measure(|| {
        for n in 0..count {
            home.new_thread(ACTOR, None, Some(&format!("thread {n}"))).expect("thread");
        }
    });
    let (cpu, wall) = per(&cost, count);
    println!("| creating {count} threads: per-thread CPU / wall | {cpu:.3} ms / {wall:.3} ms |");
    let many_dir = home.path().to_owned();
    drop(home);
    let cache_file = many_dir.join(".git/hal/cache/thread-tips");
    let list = |label: &str| {
        let home = Home::open(&many_dir).expect("open");
        let time = |cold: bool| {
            let runs: Vec<Duration> = (0..5)
                .map(|_| {
                    if cold {
                        let _ = std::fs::remove_file(&cache_file);
                    }
                    let started = Instant::now();
                    let listed = home.list_threads().expect("list");
                    assert_eq!(listed.len() as u64, count);
                    started.elapsed()
                })
                .collect();
            median(runs).as_secs_f64() * 1000.0
        };
        let (cold, warm) = (time(true), time(false));
        println!(
            "| listing {count} threads, {label}: cold cache / warm cache (median of 5) | {cold:.1} ms / {warm:.1} ms |"
        );
    };
    list("loose refs and objects");
    git(&many_dir, &["pack-refs", "--all"]);
    list("after `git pack-refs --all`");
    git(&many_dir, &["gc", "--quiet"]);
    list("after `git gc`");
    signing(root.path(), &scaled);
}

/// Section 4, what signing costs: the same steps signed and unsigned, alternating windows in one run; then signing and
/// checking a signature alone.
fn signing(root: &Path, scaled: &dyn Fn(u64) -> u64) {
    let home = fresh_home(root, "signing");
    let key = ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519).expect("key");
    let key = hal_store::keys::Signer::new(key).expect("signer");
    let signed = home.clone().with_hal_key(Some(key.clone()));
    let unsigned = home.with_hal_key(None);
    let thread = signed.new_thread(ACTOR, None, Some("signing")).expect("thread");
    let rounds = scaled(2_000) / WINDOW;
    let (mut signed_cpu, mut unsigned_cpu) = (Vec::new(), Vec::new());
    let mut n = 0;
    for _ in 0..rounds {
        for (home, costs) in [(&signed, &mut signed_cpu), (&unsigned, &mut unsigned_cpu)] {
            let cost = measure(|| {
                for _ in 0..WINDOW {
                    n += 1;
                    home.say(ACTOR, &thread.id, &message(n)).expect("say");
                }
            });
            costs.push(cost.cpu);
        }
    }
    let per_step = |costs: Vec<Duration>| median(costs).as_secs_f64() * 1e6 / WINDOW as f64;
    let (with, without) = (per_step(signed_cpu), per_step(unsigned_cpu));
    println!(
        "| a step signed / unsigned (median of {rounds} windows of {WINDOW}): CPU per step | {with:.1} µs / {without:.1} µs ({:+.1} µs) |",
        with - without
    );
    let tip = signed.say(ACTOR, &thread.id, "signed").expect("say").commit;
    let payload = signed.repo().find_object(tip).expect("tip").data.clone();
    let count = scaled(5_000);
    let cost = measure(|| {
        for _ in 0..count {
            std::hint::black_box(hal_store::keys::sign(&key, &payload).expect("sign"));
        }
    });
    let (sign_cpu, _) = per(&cost, count);
    let cost = measure(|| {
        for _ in 0..count {
            let verdict = hal_store::keys::verify_commit_bytes(&payload, gix::hash::Kind::Sha1).expect("verify");
            assert!(matches!(verdict, hal_store::keys::CommitSignature::Good(_)));
        }
    });
    let (verify_cpu, _) = per(&cost, count);
    println!(
        "| signing / checking one step's commit ({} bytes), {count} times: CPU each | {:.1} µs / {:.1} µs |",
        payload.len(),
        sign_cpu * 1000.0,
        verify_cpu * 1000.0
    );
}

/// Section 5, what the no-replay records cost: journalling a tool call before it runs, reading where HAL left a
/// branch, and asking git whether the branch still grows from there (what freezing a moved thread checks).
fn records(root: &Path, scaled: &dyn Fn(u64) -> u64) {
    let home = fresh_home(root, "records");
    let thread = home.new_thread(ACTOR, None, Some("records")).expect("thread");
    let count = scaled(10_000);
    let reply = home.say(ACTOR, &thread.id, "a reply stands here").expect("say").commit;
    let cost = measure(|| {
        for index in 0..count {
            assert!(home.claim_call(reply, index as u32).expect("journal"));
        }
    });
    let (claim, claim_wall) = per(&cost, count);
    let cost = measure(|| {
        for _ in 0..count {
            std::hint::black_box(home.landed_tip(&thread.branch).expect("record"));
        }
    });
    let (landed, _) = per(&cost, count);
    println!(
        "| journalling a tool call ({count} calls): CPU / wall each; reading where HAL left a branch: CPU each | \
         {:.1} µs / {:.1} µs; {:.1} µs |",
        claim * 1000.0,
        claim_wall * 1000.0,
        landed * 1000.0
    );
    let left = home.landed_tip(&thread.branch).expect("record").expect("landed");
    let (mut tip, mut written) = (left, 0u64);
    for ahead in [1u64, 1_000] {
        while written < ahead {
            written += 1;
            tip = home.say(ACTOR, &thread.id, &message(written)).expect("say").commit;
        }
        let runs = 200;
        let cost = measure(|| {
            for _ in 0..runs {
                assert!(home.is_ancestor(left, tip).expect("merge base"));
            }
        });
        let (each, _) = per(&cost, runs);
        println!(
            "| does the branch grow from where HAL left it, {ahead} steps ahead: CPU each | {:.1} µs |",
            each * 1000.0
        );
    }
    // What every model call and tool call asks of the halt switch while it has not moved: where its ref points.
    let cost = measure(|| {
        for _ in 0..count {
            std::hint::black_box(home.halt_tip().expect("ref"));
        }
    });
    let (halt, halt_wall) = per(&cost, count);
    println!(
        "| reading the halt switch's ref ({count} times): CPU / wall each | {:.1} µs / {:.1} µs |",
        halt * 1000.0,
        halt_wall * 1000.0
    );
    // The level of a call under a policy of 40 rules.
    let mut text = String::from("version: 1\npolicy:\n  default: AL3\n  tools:\n");
    for n in 0..20 {
        text.push_str(&format!("    tool{n}: AL2\n    tool{n}.run: AL0\n"));
    }
    let policy = hal_spec::Settings::parse("hal.yaml", &text).expect("valid").policy;
    let cost = measure(|| {
        for n in 0..count {
            let tool = format!("tool{}.run", n % 25);
            std::hint::black_box(policy.level("help", &tool, hal_spec::policy::Level::Autonomous));
        }
    });
    let (level, _) = per(&cost, count);
    println!(
        "| the autonomy level of a call, policy of 40 rules ({count} calls): CPU each | {:.2} µs |",
        level * 1000.0
    );
    // As the runner asks it: the call's plugin version too, and the rules of two helps up the chain.
    let callers = ["outer".to_owned(), "middle".to_owned()];
    let cost = measure(|| {
        for n in 0..count {
            let (tool, alias) = (format!("tool{}.run", n % 25), vec![format!("tool{}@v2.run", n % 25)]);
            let level = hal_spec::policy::Level::Autonomous;
            std::hint::black_box(policy.call_level("help", &tool, &alias, &callers, level));
        }
    });
    let (call_level, _) = per(&cost, count);
    println!(
        "| the same with a plugin version's name and two callers' helps ({count} calls): CPU each | {:.2} µs |",
        call_level * 1000.0
    );
    // Budgets: what each reply adds to HAL's record of what runs spent, and what each check reads.
    let branch = "threads/alice/bench";
    let cost = measure(|| {
        for n in 0..count {
            home.record_spend(branch, &format!("help{}", n % 10), 1_500, 0.0105).expect("spend");
        }
    });
    let (spend, spend_wall) = per(&cost, count);
    println!(
        "| recording what a reply spent ({count} replies): CPU / wall each | {:.1} µs / {:.1} µs |",
        spend * 1000.0,
        spend_wall * 1000.0
    );
    let day = home.now().div_euclid(hal_store::spent::DAY);
    let cost = measure(|| {
        for _ in 0..count {
            std::hint::black_box(home.accounts(branch, "help3", day).expect("accounts"));
        }
    });
    let (check, _) = per(&cost, count);
    println!("| a budget check (thread, help and actor today; {count} checks): CPU each | {:.2} µs |", check * 1000.0);
    let reopened = Home::open(home.path()).expect("open");
    let cost = measure(|| {
        std::hint::black_box(reopened.accounts(branch, "help3", day).expect("accounts"));
    });
    let (first, _) = per(&cost, 1);
    println!("| the first check of a new process, {count} replies recorded: CPU | {:.1} ms |", first);
    // Rate limits: a call recorded, and the buckets of a call with 1,000 calls in the last hour.
    let calls = 1_000.min(count);
    for n in 0..calls {
        home.record_call(branch, "help", &format!("tool{}.run", n % 5), &[]).expect("call");
    }
    let cost = measure(|| {
        for _ in 0..count {
            let now = home.now();
            let times = home
                .call_times(|call| call.time > now - 3_600 && call.names().any(|name| name == "tool1.run"))
                .expect("calls");
            std::hint::black_box(hal_spec::rate::wait_for_room(5_000, &times, now));
        }
    });
    let (rate, _) = per(&cost, count);
    println!(
        "| a rate-limit check with {calls} calls in the last hour ({count} checks): CPU each | {:.1} µs |",
        rate * 1000.0
    );
}
