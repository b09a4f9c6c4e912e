//! Shared helpers: a sandboxed environment, running `hal` and `git`, and fixture scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// The date every fixture commit carries.
pub const PINNED_DATE: &str = "2026-01-02T03:04:05+00:00";

/// A temporary world: a `HOME` with a git identity, and room for repositories. When it is dropped at the end of
/// a test that passed, every git repository in it must pass `git fsck --strict`, but for the problems the test
/// said it planted ([`Sandbox::expect_fsck`]).
pub struct Sandbox {
    dir: TempDir,
    /// fsck message ids a test planted on purpose, by repository.
    expected_fsck: std::cell::RefCell<Vec<(PathBuf, String)>>,
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The result of a finished command.
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panic with everything printed unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "command failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Standard output, trimmed.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

impl Sandbox {
    /// A new sandbox whose git identity is Alice Example.
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("hal-test-").tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(".user-home")).expect("home dir");
        std::fs::write(
            dir.path().join(".user-home/.gitconfig"),
            "[user]\n\tname = Alice Example\n\temail = alice@example.com\n[init]\n\tdefaultBranch = main\n",
        )
        .expect("gitconfig");
        Sandbox { dir, expected_fsck: std::cell::RefCell::default() }
    }

    /// Say that `repo` holds an object `git fsck --strict` reports with `message` (its message id, such as
    /// `hasDotgit`), planted by the test with plain git: the check at the end allows that and nothing else.
    pub fn expect_fsck(&self, repo: &Path, message: &str) {
        self.expected_fsck.borrow_mut().push((repo.to_owned(), message.to_owned()));
    }

    /// A path inside the sandbox.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Give `command` the sandbox environment.
    pub fn env(&self, command: &mut Command) {
        command
            .env("HOME", self.path(".user-home"))
            .env("XDG_CONFIG_HOME", self.path(".user-home/.config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("HAL_ACTOR")
            .env_remove("HAL_SECRETS_FILE")
            .env_remove("RUST_LOG")
            // Compiled isolates are cached by content hash: one cache for every test is safe and saves compiling.
            .env("HAL_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/hal-cache"))
            .env("NO_COLOR", "1");
    }

    /// A `hal` command run in `dir`, not yet started.
    pub fn hal_command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hal"));
        command.arg("-C").arg(dir).args(args).stdin(Stdio::null());
        self.env(&mut command);
        command
    }

    /// Run `hal` in `dir`.
    pub fn hal(&self, dir: &Path, args: &[&str]) -> Run {
        Run::from(self.hal_command(dir, args).output().expect("run hal"))
    }

    /// Run `hal` in `dir` with `input` on stdin.
    pub fn hal_with_input(&self, dir: &Path, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child = self
            .hal_command(dir, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hal");
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
        Run::from(child.wait_with_output().expect("wait for hal"))
    }

    /// Run `git` in `dir`.
    pub fn git(&self, dir: &Path, args: &[&str]) -> Run {
        let mut command = Command::new("git");
        command.arg("-C").arg(dir).args(args).stdin(Stdio::null());
        self.env(&mut command);
        Run::from(command.output().expect("run git"))
    }

    /// Run a fixture script from `fixtures/` in a new directory `name` with pinned dates.
    pub fn fixture(&self, script: &str, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(script);
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .current_dir(&dir)
            .env("GIT_AUTHOR_DATE", PINNED_DATE)
            .env("GIT_COMMITTER_DATE", PINNED_DATE);
        self.env(&mut command);
        Run::from(command.output().expect("run fixture")).ok();
        dir
    }

    /// A fresh home repo in directory `name`, made by `hal init`.
    pub fn home(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        self.hal(self.dir.path(), &["init", name]).ok();
        dir
    }
}

/// The commit a ref points at, read with git.
pub fn rev(sandbox: &Sandbox, repo: &Path, spec: &str) -> String {
    sandbox.git(repo, &["rev-parse", "--verify", "--quiet", spec]).out().to_owned()
}

/// All refs with their values, for "nothing changed" checks.
pub fn all_refs(sandbox: &Sandbox, repo: &Path) -> String {
    sandbox.git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"]).ok().stdout
}

/// The paths in a commit's tree.
pub fn tree_paths(sandbox: &Sandbox, repo: &Path, spec: &str) -> Vec<String> {
    sandbox.git(repo, &["ls-tree", "-r", "--name-only", spec]).ok().stdout.lines().map(str::to_owned).collect()
}

/// `git fsck --strict` must report no errors or warnings (dangling objects are fine).
#[track_caller]
pub fn assert_fsck_clean(sandbox: &Sandbox, repo: &Path) {
    let problems = fsck_problems(sandbox, repo);
    assert!(problems.is_empty(), "git fsck --strict complained about {}:\n{}", repo.display(), problems.join("\n"));
}

/// What `git fsck --strict` reports about `repo`: errors and warnings (dangling objects and notices, such as an
/// empty repository's unborn branch, left out).
fn fsck_problems(sandbox: &Sandbox, repo: &Path) -> Vec<String> {
    let run = sandbox.git(repo, &["fsck", "--strict", "--no-progress"]);
    let mut problems: Vec<String> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .filter(|line| !line.starts_with("dangling ") && !line.starts_with("notice: ") && !line.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if run.code != 0 && problems.is_empty() {
        problems.push(format!("git fsck exited with {}", run.code));
    }
    problems
}

/// The git repositories under `dir`: work trees (holding `.git`) and bare repositories.
fn repositories(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    if dir.join(".git").exists() || (dir.join("HEAD").is_file() && dir.join("objects").is_dir()) {
        found.push(dir.to_owned());
        return;
    }
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) && entry.file_name() != ".user-home" {
            repositories(&entry.path(), found);
        }
    }
}

impl Drop for Sandbox {
    /// Every repository a passing test leaves behind passes `git fsck --strict`.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let mut repos = Vec::new();
        repositories(self.dir.path(), &mut repos);
        let expected = self.expected_fsck.borrow();
        let mut complaints = Vec::new();
        for repo in repos {
            let allowed: Vec<&str> =
                expected.iter().filter(|(r, _)| *r == repo).map(|(_, message)| message.as_str()).collect();
            for problem in fsck_problems(self, &repo) {
                if !allowed.iter().any(|message| problem.contains(message)) {
                    complaints.push(format!("{}: {problem}", repo.display()));
                }
            }
        }
        assert!(complaints.is_empty(), "git fsck --strict complained:\n{}", complaints.join("\n"));
    }
}

/// Create a thread and return its id.
pub fn new_thread(sandbox: &Sandbox, repo: &Path, title: &str) -> String {
    sandbox.hal(repo, &["thread", "new", "--title", title]).ok().out().to_owned()
}

/// Wait out the last two minutes of a UTC day: a test that counts a day's spend across two runs must not have its
/// runs fall on two days.
pub fn clear_of_utc_midnight() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let into_day = now % 86_400;
    if into_day > 86_400 - 120 {
        std::thread::sleep(std::time::Duration::from_secs(86_400 - into_day + 1));
    }
}
