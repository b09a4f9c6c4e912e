//! A temporary directory whose git repositories must pass `git fsck --strict` when a passing test ends (shared by
//! the runner's and the sandbox's tests through `#[path]`).

use std::path::Path;

/// A temporary directory whose git repositories must pass `git fsck --strict` when a passing test ends.
pub struct Checked(pub tempfile::TempDir);

impl Checked {
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let mut repos = Vec::new();
        let mut todo = vec![self.0.path().to_owned()];
        while let Some(dir) = todo.pop() {
            if dir.join(".git").is_dir() || (dir.join("HEAD").is_file() && dir.join("objects").is_dir()) {
                repos.push(dir);
                continue;
            }
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(entry.path());
                }
            }
        }
        for repo in repos {
            let output = std::process::Command::new("git")
                .args(["fsck", "--strict", "--no-progress"])
                .current_dir(&repo)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .expect("git fsck");
            let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
            let problems: Vec<&str> =
                text.lines().filter(|l| !l.starts_with("dangling ") && !l.starts_with("notice: ")).collect();
            assert!(
                output.status.success() && problems.is_empty(),
                "git fsck --strict on {}: {problems:?}",
                repo.display()
            );
        }
    }
}
