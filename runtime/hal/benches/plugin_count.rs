//! What plugin versions on `main` cost the commands that load tools: `hal status` and one `hal help run` whose
//! help calls one plugin, with 1 and then with 50 versions of a Python plugin on `main` (all built; the 49 added
//! share one build, so only loading is measured). Versions are loaded at their first call, so the second figures
//! should stay within 1.5× of the first.
//!
//! `cargo bench -p hal --bench plugin_count` (release), or `--profile dev` for the debug build the tests use. The
//! first run provisions componentize-py and builds the plugin into `target/tmp/hal-cache` (tens of seconds).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hal_testmodel::{Scripted, ScriptedServer};
use serde_json::json;

const RUNS: usize = 15;
const VERSIONS: u32 = 50;

const MANIFEST: &str = "name: convert\nversion: 1\ndescription: Converts lengths.\nfunctions:\n  - name: convert\n    \
                        description: Convert a length between m and km.\n    parameters:\n      type: object\n";
const SOURCE: &str = "def convert(value, unit_from, unit_to):\n    factors = {\"m\": 1.0, \"km\": 1000.0}\n    \
                      return {\"value\": value * factors[unit_from] / factors[unit_to], \"unit\": unit_to}\n";

struct Home {
    /// The user's home directory.
    base: PathBuf,
    repo: PathBuf,
}

impl Home {
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(&self.repo)
            .args(args)
            .env("HOME", &self.base)
            .env("XDG_CONFIG_HOME", self.base.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HAL_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/hal-cache"))
            .env("BENCH_KEY", "sk-bench")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.command(program, args).output().expect("run");
        assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output
    }

    fn commit(&self, files: &[(String, String)]) {
        for (path, text) in files {
            let path = self.repo.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(path, text).expect("write");
        }
        self.run("git", &["add", "-A"]);
        self.run("git", &["commit", "-S", "-q", "-m", "plugins"]);
    }
}

/// The median wall times of `RUNS` runs of `hal args` in each of `homes`, taken in turn (one run in each, then
/// again), so that whatever else the machine does weighs on both alike.
fn medians(homes: [&Home; 2], args: &[&str]) -> [Duration; 2] {
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for (home, times) in homes.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            home.run(env!("CARGO_BIN_EXE_hal"), args);
            times.push(start.elapsed());
        }
    }
    times.map(|mut times| {
        times.sort();
        times[RUNS / 2]
    })
}

/// A home repo with `versions` versions of the plugin on main, built, and a help that calls it.
fn home(base: &Path, name: &str, server: &ScriptedServer, versions: u32) -> Home {
    let user = base.join("user");
    let home = Home { base: user.clone(), repo: base.join(name) };
    let output = Command::new(env!("CARGO_BIN_EXE_hal"))
        .current_dir(base)
        .args(["init", name])
        .env("HOME", &user)
        .env("XDG_CONFIG_HOME", user.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("hal init");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let settings = format!(
        "version: 1\nmodels:\n  scripted:\n    provider: openai\n    base_url: {}\n    model: m\n    key: BENCH_KEY\n\
         tasks:\n  default: scripted\n",
        server.base_url()
    );
    let mut files = vec![
        ("hal.yaml".to_owned(), settings),
        ("helps/measure.yaml".to_owned(), "description: Converts lengths\ncommands: [convert]\n".to_owned()),
    ];
    for n in 1..=versions {
        let manifest = MANIFEST.replace("version: 1", &format!("version: {n}"));
        files.push((format!("plugins/convert/v{n}/plugin.yaml"), manifest));
        files.push((format!("plugins/convert/v{n}/plugin.py"), SOURCE.to_owned()));
    }
    home.commit(&files);
    let built = Instant::now();
    home.run(env!("CARGO_BIN_EXE_hal"), &["isolate", "build"]);
    eprintln!("{name}: {versions} versions built in {:.1} s", built.elapsed().as_secs_f64());
    home
}

fn main() {
    let base = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(base.path().join("user")).expect("home");
    let identity = "[user]\n\tname = Bench Example\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n";
    std::fs::write(base.path().join("user/.gitconfig"), identity).expect("gitconfig");
    let server = ScriptedServer::start(Vec::new());
    let one = home(base.path(), "one", &server, 1);
    let many = home(base.path(), "many", &server, VERSIONS);
    let status = medians([&one, &many], &["status"]);
    let script = [
        Scripted::tool("convert.convert", json!({"value": 2, "unit_from": "km", "unit_to": "m"})),
        Scripted::finish("DONE", "2000 m"),
    ];
    server.push((0..2 * RUNS).flat_map(|_| script.clone()));
    let run = medians([&one, &many], &["help", "run", "measure", "How many metres are 2 km?"]);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| command | 1 version | {VERSIONS} versions | ratio |");
    println!("|---|---:|---:|---:|");
    for (what, [a, b]) in [("hal status", status), ("hal help run (one plugin call)", run)] {
        println!("| {what} | {:.0} ms | {:.0} ms | {:.2}× |", ms(a), ms(b), b.as_secs_f64() / a.as_secs_f64());
    }
}
