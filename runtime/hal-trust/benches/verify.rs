//! What checking signatures costs: `hal thread verify` on a 10,000-step thread, against reading the same steps
//! without checking them, in one run. `HAL_BENCH_SCALE` scales the step count.

#![allow(unsafe_code)] // set_var before any thread starts; see the SAFETY comment.

use std::time::Instant;

use hal_store::Home;
use hal_trust::{Keyring, verify_thread};

fn main() {
    // SAFETY: no other threads exist yet.
    unsafe { std::env::set_var(hal_store::MAINTENANCE_ENV, "off") };
    let scale: f64 = std::env::var("HAL_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let count = ((10_000.0 * scale) as usize).max(100);
    let dir = tempfile::Builder::new().prefix("hal-bench-verify-").tempdir().expect("temp dir");
    let (home, _) = Home::init(dir.path(), Some("alice")).expect("init");
    let thread = home.new_thread("alice", None, Some("long")).expect("thread");
    let started = Instant::now();
    for n in 0..count {
        home.say("alice", &thread.id, &format!("message {n}: a line of text as a person would write it")).expect("say");
    }
    let writing = started.elapsed();
    println!("| measurement | figure |\n| --- | --- |");
    println!(
        "| writing {count} signed steps | {:.2} s ({:.0} µs per step) |",
        writing.as_secs_f64(),
        writing.as_secs_f64() * 1e6 / count as f64
    );

    let median = |mut runs: Vec<f64>| {
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    };
    let (mut reading, mut verifying, mut loading) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let started = Instant::now();
        let steps = home.thread_log(&thread.id, None).expect("log");
        assert_eq!(steps.len(), count + 1);
        reading.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let keyring = Keyring::load(&home).expect("keyring");
        loading.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let check = verify_thread(&home, &keyring, &thread.id).expect("verify");
        verifying.push(started.elapsed().as_secs_f64());
        assert_eq!((check.steps, check.wrong), (count + 1, 0));
    }
    let (reading, loading, verifying) = (median(reading), median(loading), median(verifying));
    println!("| reading the {} steps, no check (median of 3) | {:.0} ms |", count + 1, reading * 1e3);
    println!("| loading the keyring (owners, actor keys) | {:.2} ms |", loading * 1e3);
    println!(
        "| verifying the {} steps (median of 3) | {:.0} ms ({:.0} µs per step; {:.1}x reading) |",
        count + 1,
        verifying * 1e3,
        verifying * 1e6 / (count + 1) as f64,
        verifying / reading
    );
}
