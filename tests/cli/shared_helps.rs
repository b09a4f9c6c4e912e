//! Helps shared between home repos: `hal help add <git-url>[#<path>]` fetches another repository (served here by a
//! real `git daemon` on loopback) and puts the help, with the isolates and plugins it names, on a new thread to
//! merge, pinned by the source commit; names that would inherit grants or change a plugin version are refused.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::{Sandbox, rev};

/// `git daemon` serving the repositories under `base` on a free loopback port, stopped when dropped.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn start(sandbox: &Sandbox, base: &Path) -> GitDaemon {
        // A port found free may be taken before the daemon binds it: then it exits, and another port is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
            let mut command = Command::new("git");
            command
                .args(["daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
                .arg(format!("--base-path={}", base.display()))
                .arg(base)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            sandbox.env(&mut command);
            // Stopped (and waited for) when dropped, whichever way the test goes.
            let mut daemon = GitDaemon { child: command.spawn().expect("git daemon"), port };
            // Ready when it answers as a git server (bounded: 10 s).
            for _ in 0..200 {
                if daemon.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                let url = format!("git://127.0.0.1:{port}/");
                let probe = Command::new("git").args(["ls-remote", &url]).stdin(Stdio::null()).output();
                // Any answer from git's protocol (even "no such repository") means the daemon is up.
                if probe.is_ok_and(|out| {
                    out.status.success() || String::from_utf8_lossy(&out.stderr).contains("remote error")
                }) {
                    return daemon;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        panic!("git daemon did not start");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_help_from_another_repo_lands_on_a_thread_pinned_by_its_source_commit() {
    let sandbox = Sandbox::new();
    // The source: another home repo with a help that names a plugin it holds.
    let source = sandbox.home("shared/helps.git");
    crate::runs::commit(
        &sandbox,
        &source,
        &[
            ("helps/notes.yaml", "description: Takes notes\ncommands: [files, wordcount]\n"),
            ("plugins/wordcount/v1/plugin.yaml", "name: wordcount\n"),
            ("plugins/wordcount/v1/plugin.py", "# counts words\n"),
        ],
    );
    let source_commit = rev(&sandbox, &source, "HEAD");
    let server = GitDaemon::start(&sandbox, &sandbox.path("shared"));
    let url = format!("git://127.0.0.1:{}/helps.git", server.port);

    let repo = sandbox.home("home");
    let main = rev(&sandbox, &repo, "main");
    // No path: the source's one help is meant.
    let added = sandbox.hal(&repo, &["help", "add", &url, "--json"]);
    assert_eq!(added.code, 0, "{}{}", added.stdout, added.stderr);
    let report = added.json();
    assert_eq!(report["commit"], source_commit.as_str());
    assert_eq!(report["files"], 3, "{report:#}");
    let id = report["thread"].as_str().expect("thread");
    let branch = format!("threads/alice-example/{id}");
    let help = sandbox.git(&repo, &["show", &format!("{branch}:helps/notes.yaml")]).ok().stdout;
    assert!(help.starts_with(&format!("# from {url}#helps/notes.yaml at {source_commit}\n")), "{help}");
    let plugin = sandbox.git(&repo, &["show", &format!("{branch}:plugins/wordcount/v1/plugin.py")]).ok().stdout;
    assert_eq!(plugin, "# counts words\n");
    assert_eq!(rev(&sandbox, &repo, "main"), main, "nothing lands on main but by a merge");
    assert_eq!(sandbox.git(&repo, &["show-ref", "refs/hal/import"]).code, 1, "the fetch leaves no ref behind");
    let left: Vec<_> = std::fs::read_dir(repo.join(".git/hal")).expect("hal dir").flatten().collect();
    assert!(!left.iter().any(|e| e.file_name().to_string_lossy().starts_with("import-")), "no scratch repo is left");

    // Under a name that exists here, or bringing a plugin version published here: refused, nothing started.
    sandbox.hal(&repo, &["thread", "merge", id]).ok();
    let again = sandbox.hal(&repo, &["help", "add", &format!("{url}#helps/notes.yaml")]);
    assert!(again.code != 0 && again.stderr.contains("--as"), "{}", again.stderr);
    // Under another name it comes again; the plugin version here is the same, so it is not written twice.
    let renamed = sandbox.hal(&repo, &["help", "add", &format!("{url}#helps/notes.yaml"), "--as", "notes2", "--json"]);
    assert_eq!(renamed.code, 0, "{}{}", renamed.stdout, renamed.stderr);
    assert_eq!(renamed.json()["files"], 1, "{}", renamed.stdout);
    // A plugin version that differs from the one here, a name hal.yaml grants capabilities to, a built-in isolate's
    // name: refused, whatever the help is called.
    crate::runs::commit(
        &sandbox,
        &source,
        &[(
            "plugins/wordcount/v1/plugin.py",
            "# counts words, and more
",
        )],
    );
    let changed = sandbox.hal(&repo, &["help", "add", &format!("{url}#helps/notes.yaml"), "--as", "notes3"]);
    assert!(changed.code != 0 && changed.stderr.contains("differs from the one here"), "{}", changed.stderr);
    let settings = std::fs::read_to_string(repo.join("hal.yaml")).expect("hal.yaml");
    let grant = "sandbox:\n  isolates:\n    wordcount:\n      secrets: [WORDS_KEY]\n";
    crate::runs::commit(&sandbox, &repo, &[("hal.yaml", &format!("{settings}{grant}"))]);
    let granted = sandbox.hal(&repo, &["help", "add", &format!("{url}#helps/notes.yaml"), "--as", "notes4"]);
    assert!(granted.code != 0 && granted.stderr.contains("grants `wordcount` capabilities"), "{}", granted.stderr);
    crate::runs::commit(
        &sandbox,
        &source,
        &[
            ("helps/reader.yaml", "description: Reads\ncommands: [files.read]\n"),
            ("isolates/files/isolate.yaml", "x\n"),
        ],
    );
    let built_in = sandbox.hal(&repo, &["help", "add", &format!("{url}#helps/reader.yaml")]);
    assert!(built_in.code != 0 && built_in.stderr.contains("built-in isolate `files`"), "{}", built_in.stderr);
    // With two helps there, a URL without a path is refused, naming both.
    let which = sandbox.hal(&repo, &["help", "add", &url]);
    let named = format!("has 2 helps: name one, as {url}#helps/notes.yaml, {url}#helps/reader.yaml");
    assert!(which.code != 0 && which.stderr.contains(&named), "{}", which.stderr);
    // Credentials in a URL would be written into commits: refused.
    let secret = sandbox.hal(&repo, &["help", "add", "https://me:token@example.invalid/x.git#helps/a.yaml"]);
    assert!(secret.code != 0 && secret.stderr.contains("credentials"), "{}", secret.stderr);
    // A path out of the source's tree, a missing file, a URL that is an option: refused with the reason.
    let escape = sandbox.hal(&repo, &["help", "add", &format!("{url}#../secrets.yaml")]);
    assert!(escape.code != 0, "{}", escape.stderr);
    let missing = sandbox.hal(&repo, &["help", "add", &format!("{url}#helps/none.yaml")]);
    assert!(missing.code != 0 && missing.stderr.contains("helps/notes.yaml"), "{}", missing.stderr);
    let option = sandbox.hal(&repo, &["help", "add", "--", "--upload-pack=touch x#helps/notes.yaml"]);
    assert!(option.code != 0 && option.stderr.contains("is not a repository URL"), "{}", option.stderr);
    assert!(!repo.join("x").exists());
}

/// `hal help update` proposes the source's newer version on a thread, showing the difference; nothing when the
/// source has not moved.
#[test]
fn an_added_help_is_updated_from_its_source_on_a_thread_showing_the_difference() {
    let sandbox = Sandbox::new();
    let source = sandbox.home("shared/helps.git");
    crate::runs::commit(&sandbox, &source, &[("helps/notes.yaml", "description: Takes notes\ncommands: [files]\n")]);
    let server = GitDaemon::start(&sandbox, &sandbox.path("shared"));
    let url = format!("git://127.0.0.1:{}/helps.git", server.port);
    let repo = sandbox.home("home");
    let added = sandbox.hal(&repo, &["help", "add", &format!("{url}#helps/notes.yaml"), "--json"]).ok().json();
    sandbox.hal(&repo, &["thread", "merge", added["thread"].as_str().expect("thread")]).ok();
    let same = sandbox.hal(&repo, &["help", "update", "notes"]).ok();
    assert!(same.stdout.contains("notes is up to date"), "{}", same.stdout);

    crate::runs::commit(
        &sandbox,
        &source,
        &[("helps/notes.yaml", "description: Takes better notes\ncommands: [files]\n")],
    );
    let newer = rev(&sandbox, &source, "HEAD");
    let updated = sandbox.hal(&repo, &["help", "update", "notes"]);
    assert_eq!(updated.code, 0, "{}{}", updated.stdout, updated.stderr);
    assert!(updated.stderr.contains("+description: Takes better notes"), "the difference: {}", updated.stderr);
    let id = updated.stdout.trim();
    let help = sandbox.git(&repo, &["show", &format!("threads/alice-example/{id}:helps/notes.yaml")]).ok().stdout;
    assert!(help.starts_with(&format!("# from {url}#helps/notes.yaml at {newer}\n")), "{help}");
    let not_added = sandbox.hal(&repo, &["help", "update", "hal"]);
    assert!(not_added.code != 0, "{}", not_added.stderr);
}
