//! `hal help add <git-url>[#<path>] [--as <name>]`: a help shared by another home repo, copied here on a new thread
//! (with the isolates and plugins its commands name that the source holds), pinned by the source commit in the
//! help's first line and in the steps, to be merged like any other work.
//!
//! The source is fetched into a scratch bare repository beside this one (shallow, objects checked, no tags or
//! submodules, no prompt, bounded in time), read from there, and removed: only the files copied enter this repo.
//! Nothing is granted: a help, isolate or plugin whose name would inherit grants in `hal.yaml`, replace a built-in,
//! or change an isolate or a published plugin version here is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hal_daemon::protocol::{Command, FileContent, Response};
use hal_store::Home;

use super::CommandEnd;
use crate::cli::Args;
use crate::output;

/// Most files one import copies, and most bytes in all.
const MAX_FILES: usize = 500;
const MAX_BYTES: u64 = 16 << 20;
/// Largest help file.
const MAX_HELP_BYTES: u64 = 256 << 10;
/// Longest a fetch may take.
const FETCH_TIME: Duration = Duration::from_secs(300);

/// One file of the source's tree, as `git ls-tree` lists it.
struct Entry {
    mode: String,
    size: u64,
    path: String,
}

/// Add the help at `source` (`<git-url>[#<path>]`) to this repo on a new thread, named `name` (default: its file's).
/// Without a path, the source's one help under `helps/` is meant.
pub fn add(args: &Args, source: &str, name: Option<&str>) -> Result<CommandEnd> {
    let (url, path) = match source.rsplit_once('#') {
        Some((url, path)) => (url, Some(path)),
        None => (source, None),
    };
    check_url(url)?;
    let path = match path {
        Some(path) => {
            Some(hal_store::tree_path::normalize(path).with_context(|| format!("the path {path:?} in {source}"))?)
        }
        None => None,
    };
    let home = Home::open(&args.directory)?;
    let scratch = Scratch::new(&home)?;
    let commit = scratch.fetch(url)?;
    let path = match path {
        Some(path) => path,
        None => only_help(&scratch, url, &commit)?,
    };
    let files = gather(&home, &scratch, url, &path, &commit, name, false)?;
    drop(scratch);
    write(args, &home, url, &commit, files, "add")
}

/// The source's one help file under `helps/`, for a URL that names none; else which there are, to name one.
fn only_help(scratch: &Scratch, url: &str, commit: &str) -> Result<String> {
    let helps: Vec<String> = scratch
        .entries(commit)?
        .into_iter()
        .filter(|entry| entry.mode.starts_with("100"))
        .map(|entry| entry.path)
        .filter(|path| path.strip_prefix("helps/").is_some_and(|name| !name.contains('/') && name.ends_with(".yaml")))
        // A name git allows but a path here may not have (a newline would reach the pinned first line) is no help.
        .filter(|path| hal_store::tree_path::normalize(path).is_ok_and(|normal| normal == *path))
        .filter(|path| !path.chars().any(char::is_control))
        .collect();
    match helps.as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!("{url} has no help under helps/: name the file, <git-url>#<path>"),
        _ => {
            let named: Vec<String> = helps.iter().take(20).map(|path| format!("{url}#{path}")).collect();
            bail!("{url} has {} helps: name one, as {}", helps.len(), named.join(", "))
        }
    }
}

/// `hal help update <name>`: the newer version of a help `hal help add` brought, from the source its first line
/// names, on a new thread to merge, with the difference shown.
pub fn update(args: &Args, name: &str) -> Result<CommandEnd> {
    let home = Home::open(&args.directory)?;
    let main = home.main_tip()?.context("this repo has no main")?;
    let file = format!("helps/{name}.yaml");
    let text = home.file_at(main, &file)?.with_context(|| format!("there is no {file} on main"))?;
    let text = String::from_utf8_lossy(&text).into_owned();
    let Some((source, pinned)) =
        text.lines().next().and_then(|line| line.strip_prefix("# from ")).and_then(|rest| rest.rsplit_once(" at "))
    else {
        bail!(
            "{file} names no source on its first line (`# from <url>#<path> at <commit>`): `hal help add` brings those"
        );
    };
    let Some((url, path)) = source.rsplit_once('#') else { bail!("{file}'s first line names no path in its source") };
    check_url(url)?;
    let path = hal_store::tree_path::normalize(path).with_context(|| format!("the path in {file}'s first line"))?;
    let scratch = Scratch::new(&home)?;
    let commit = scratch.fetch(url)?;
    if commit == pinned.trim() {
        drop(scratch);
        outln!("{name} is up to date: {url} is still at {}", &commit[..10.min(commit.len())]);
        return Ok(CommandEnd::Done);
    }
    let files = gather(&home, &scratch, url, &path, &commit, Some(name), true)?;
    drop(scratch);
    let outcome = write(args, &home, url, &commit, files, "update")?;
    Ok(outcome)
}

/// What an import writes: the help's name and the files, the help first.
struct Files {
    name: String,
    files: Vec<(String, Vec<u8>)>,
    /// Entries of the source left out (symbolic links, submodules), to say so.
    skipped: Vec<String>,
}

/// The help at `path` of the source's `commit`, and what its commands name, checked against this repo.
fn gather(
    home: &Home,
    scratch: &Scratch,
    url: &str,
    path: &str,
    commit: &str,
    name: Option<&str>,
    replacing: bool,
) -> Result<Files> {
    let at = |what: &str| format!("{what} in {url} at {}", &commit[..10.min(commit.len())]);
    let entries = scratch.entries(commit)?;
    let Some(help_entry) = entries.iter().find(|entry| entry.path == path && entry.mode.starts_with("100")) else {
        let helps: Vec<&str> =
            entries.iter().filter(|e| e.path.starts_with("helps/")).map(|e| e.path.as_str()).take(20).collect();
        bail!(
            "there is no file {} (its helps: {})",
            at(path),
            if helps.is_empty() { "none".into() } else { helps.join(", ") }
        );
    };
    if help_entry.size > MAX_HELP_BYTES {
        bail!("{} is {} bytes, more than a help file may be ({MAX_HELP_BYTES})", at(path), help_entry.size);
    }
    let text =
        String::from_utf8(scratch.blob(commit, path)?).map_err(|_| anyhow::anyhow!("{} is not UTF-8", at(path)))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned();
    let help = hal_spec::Help::parse(path, &text).map_err(|e| anyhow::anyhow!("{}: {e}", at(path)))?;
    let stem = Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let name = name.unwrap_or(stem).to_owned();
    if !hal_spec::is_name(&name) {
        bail!("`{name}` is not a help name (lowercase letters, digits, `-` and `_`): give one with --as");
    }
    // What is in force here: the catalogue as HAL loads it (hal.yaml an owner signed); one that does not read
    // checks nothing, so nothing is imported.
    let catalog = hal_runner::Catalog::load(home)?;
    if let Some(error) = &catalog.settings_error {
        bail!("hal.yaml here does not read ({error}): fix it before importing, so its grants can be checked");
    }
    // (An update replaces the help it names; its isolates and plugin versions are checked as any import's are.)
    if catalog.entry(&name).is_some() && !replacing {
        bail!("a help named `{name}` is here already (on main or built in): import this one with --as <name>");
    }
    let main = home.main_tip()?.context("this repo has no main")?;
    let pinned = format!("# from {url}#{path} at {commit}\n{text}");
    hal_spec::Help::parse(path, &pinned).map_err(|e| anyhow::anyhow!("{} with its source line: {e}", at(path)))?;
    if replacing && hal_spec::builtin::HELPS.iter().any(|(built_in, _)| *built_in == name) {
        bail!("`{name}` is a built-in help's name: an import never replaces one");
    }
    let mut files = vec![(format!("helps/{name}.yaml"), pinned.into_bytes())];
    let mut skipped = Vec::new();
    let mut bytes = help_entry.size;
    let built_in: Vec<&str> = hal_sandbox::builtin::BUILTINS.iter().map(|b| b.name).collect();
    let mut bases: Vec<&str> = help.commands.iter().filter_map(|c| c.split(['.', '@']).next()).collect();
    bases.sort_unstable();
    bases.dedup();
    for base in bases {
        for dir in [format!("isolates/{base}/"), format!("plugins/{base}/")] {
            let found: Vec<&Entry> = entries.iter().filter(|entry| entry.path.starts_with(&dir)).collect();
            if found.is_empty() {
                continue;
            }
            // Grants in hal.yaml go by name, to an isolate or to every version of a plugin: a newcomer of that name
            // would run with them. A built-in's name would replace it for every help.
            if catalog.settings.sandbox.isolates.contains_key(base) {
                bail!("the help brings {dir}, and hal.yaml here grants `{base}` capabilities it would inherit");
            }
            if built_in.contains(&base) {
                bail!("the help brings {dir}, which would replace HAL's built-in isolate `{base}`");
            }
            for entry in found {
                if !entry.mode.starts_with("100") {
                    skipped.push(format!("{} (mode {})", entry.path, entry.mode));
                    continue;
                }
                let file = hal_store::tree_path::normalize(&entry.path).with_context(|| at(&entry.path))?;
                // By the size the tree gives, before anything of it is read.
                if entry.size > MAX_BYTES {
                    bail!("the help brings {file} of {} bytes, more than an import copies ({MAX_BYTES})", entry.size);
                }
                let content = scratch.blob(commit, &entry.path)?;
                let differs = || {
                    anyhow::anyhow!(
                        "the help brings {file}, which differs from the one here: isolates and published plugin \
                         versions are not changed by an import"
                    )
                };
                match home.file_at_most(main, &file, MAX_BYTES) {
                    // Here already, the same: nothing to write.
                    Ok(Some(here)) if here == content => continue,
                    Ok(Some(_)) | Err(hal_store::StoreError::TooLarge { .. }) => return Err(differs()),
                    Ok(None) => {}
                    Err(error) => return Err(error.into()),
                }
                bytes = bytes.saturating_add(entry.size);
                if files.len() >= MAX_FILES || bytes > MAX_BYTES {
                    bail!(
                        "the help brings more than {MAX_FILES} files or {MAX_BYTES} bytes, more than an import copies"
                    );
                }
                files.push((file, content));
            }
        }
    }
    Ok(Files { name, files, skipped })
}

/// Write the import on a new thread, one step per file, each naming the source.
fn write(args: &Args, home: &Home, url: &str, commit: &str, import: Files, verb: &str) -> Result<CommandEnd> {
    let Files { name, files, skipped } = import;
    let actor = home.resolve_actor(None)?;
    let handle = super::remote::handle(args)?;
    let started = handle.command(&Command::NewThread {
        actor: Some(actor.clone()),
        from: None,
        title: Some(format!("help {verb} {name} from {url}")),
        help: None,
        agent: None,
        input: None,
        purpose: None,
        idempotency_key: None,
        started_by_run: None,
    })?;
    let Response::Started { thread, .. } = started else { bail!("the new thread was answered with {started:?}") };
    let count = files.len();
    for (file, content) in files {
        let write = Command::Write {
            actor: Some(actor.clone()),
            thread: thread.id.clone(),
            path: file.clone(),
            content: FileContent::of(content),
            message: Some(format!("help {verb} {name}: {file} from {url} at {commit}")),
            keep_status: false,
        };
        handle
            .command(&write)
            .with_context(|| format!("writing {file} on thread {} (what was written so far is there)", thread.id))?;
    }
    if args.json {
        let report = serde_json::json!({"thread": thread.id, "help": name, "source": url, "commit": commit,
            "files": count, "skipped": skipped});
        output::json(&report)?;
    } else {
        outln!("{}", thread.id);
        for entry in &skipped {
            eprintln!("left out: {entry} (only plain files are copied)");
        }
        if verb == "update" {
            // What changes, as a person reviews it before the merge.
            let branch = format!("threads/{actor}/{}", thread.id);
            let diff = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(home.repo().common_dir())
                .args(["diff", "--no-color", "main", &branch, "--"])
                .output();
            if let Ok(diff) = diff {
                let diff = String::from_utf8_lossy(&diff.stdout);
                let clean: String = diff.chars().map(|c| if c.is_control() && c != '\n' { ' ' } else { c }).collect();
                eprint!("{clean}");
            }
        }
        eprintln!(
            "help `{name}` from {url} at {} ({count} file{}) is on thread {}: look, then `hal thread merge {}`",
            &commit[..10.min(commit.len())],
            if count == 1 { "" } else { "s" },
            thread.id,
            thread.id
        );
    }
    Ok(CommandEnd::Done)
}

/// Refuse a URL that could run a command, pass for an option, or carry a password into commits and output.
fn check_url(url: &str) -> Result<()> {
    if url.is_empty() || url.starts_with('-') || url.chars().any(char::is_control) {
        bail!("{url:?} is not a repository URL");
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "https" | "http" | "git" | "ssh" | "file") {
            bail!("{scheme}:// URLs are not fetched: https, http, git, ssh and file are");
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') && matches!(scheme, "https" | "http") {
            bail!("the URL carries credentials, which would be written into the thread's commits: leave them out");
        }
    }
    Ok(())
}

/// A scratch bare repository beside the home repo, removed when dropped.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(home: &Home) -> Result<Scratch> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let dir = home.repo().common_dir().join(format!("hal/import-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let scratch = Scratch { dir };
        let made = std::process::Command::new("git")
            .args(["init", "--quiet", "--bare"])
            .arg(&scratch.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .context("running git init")?;
        if !made.status.success() {
            bail!("git init {}: {}", scratch.dir.display(), String::from_utf8_lossy(&made.stderr).trim());
        }
        Ok(scratch)
    }

    /// Fetch `url`'s HEAD (its tip only): the commit.
    fn fetch(&self, url: &str) -> Result<String> {
        let config = [
            "protocol.allow=never",
            "protocol.https.allow=always",
            "protocol.http.allow=always",
            "protocol.git.allow=always",
            "protocol.ssh.allow=always",
            "protocol.file.allow=always",
            "transfer.fsckObjects=true",
            "core.sshCommand=ssh -oBatchMode=yes",
            "http.lowSpeedLimit=1000",
            "http.lowSpeedTime=60",
        ];
        let mut args: Vec<&str> = config.iter().flat_map(|c| ["-c", *c]).collect();
        args.extend(["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--depth=1", "--", url]);
        args.push("+HEAD:refs/import");
        self.git(&args, FETCH_TIME).with_context(|| format!("fetching {url}"))?;
        Ok(self.git(&["rev-parse", "--verify", "refs/import^{commit}"], Duration::from_secs(30))?.trim().to_owned())
    }

    /// Every entry of `commit`'s tree.
    fn entries(&self, commit: &str) -> Result<Vec<Entry>> {
        let listing = self.git(&["ls-tree", "-r", "-l", "-z", "--full-tree", commit], Duration::from_secs(60))?;
        let mut entries = Vec::new();
        for record in listing.split('\0').filter(|r| !r.is_empty()) {
            let Some((meta, path)) = record.split_once('\t') else { continue };
            let fields: Vec<&str> = meta.split_whitespace().collect();
            let (Some(mode), Some(size)) = (fields.first(), fields.get(3)) else { continue };
            entries.push(Entry { mode: (*mode).to_owned(), size: size.parse().unwrap_or(0), path: path.to_owned() });
        }
        Ok(entries)
    }

    fn blob(&self, commit: &str, path: &str) -> Result<Vec<u8>> {
        let output = self.output(&["cat-file", "blob", &format!("{commit}:{path}")], Duration::from_secs(60))?;
        Ok(output)
    }

    fn git(&self, args: &[&str], limit: Duration) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.output(args, limit)?).into_owned())
    }

    /// Run `git` in the scratch repository, killed after `limit`.
    fn output(&self, args: &[&str], limit: Duration) -> Result<Vec<u8>> {
        use std::io::Read;
        let mut child = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running git")?;
        let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        let out = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.as_mut().map(|s| s.read_to_end(&mut bytes));
            bytes
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.as_mut().map(|s| s.read_to_string(&mut text));
            text
        });
        let Some(status) = wait_timeout::ChildExt::wait_timeout(&mut child, limit).context("waiting for git")? else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("git {} took longer than {} s", args.first().unwrap_or(&""), limit.as_secs());
        };
        let (bytes, text) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
        if !status.success() {
            bail!(
                "git {}: {}",
                args.iter().find(|a| !a.starts_with('-') && !a.contains('=')).unwrap_or(&""),
                text.trim()
            );
        }
        Ok(bytes)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
