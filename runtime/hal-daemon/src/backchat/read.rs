//! What HAL's commands read: threads listed and summarised, commits shown, files read at any ref, a thread's
//! changes against main, and the one command here that writes, a proposal to merge (a step, never a merge).

use hal_store::{Home, StepKind, ThreadStatus};

use super::{DIFF_LINES, MAX_LISTED, MAX_READ};

pub(super) fn list(home: &Home, status: &str, text: &str) -> Result<String, String> {
    let mut threads = home.list_threads().map_err(|e| e.to_string())?;
    threads.reverse();
    let text = text.to_lowercase();
    let matching: Vec<_> = threads
        .iter()
        .filter(|t| status.is_empty() || t.status.as_str().eq_ignore_ascii_case(status))
        .filter(|t| text.is_empty() || t.title.to_lowercase().contains(&text) || t.id.contains(&text))
        .collect();
    if matching.is_empty() {
        return Ok("no threads match".to_owned());
    }
    let mut out = String::new();
    for thread in matching.iter().take(MAX_LISTED) {
        out.push_str(&format!(
            "{} [{}] {} steps, actor {}: {}\n",
            thread.id, thread.status, thread.steps, thread.actor, thread.title
        ));
    }
    if matching.len() > MAX_LISTED {
        out.push_str(&format!("… and {} more; narrow with status or text\n", matching.len() - MAX_LISTED));
    }
    Ok(out)
}

pub(super) fn summary(home: &Home, query: &str) -> Result<String, String> {
    let thread = home.resolve_thread(query).map_err(|e| e.to_string())?;
    let steps = home.thread_log(&thread.branch, Some(30)).map_err(|e| e.to_string())?;
    let listed = home.list_threads().map_err(|e| e.to_string())?;
    let summary = listed.iter().find(|t| t.branch == thread.branch);
    let mut out = format!("thread {} ({})\n", thread.id, thread.branch);
    if let Some(summary) = summary {
        out.push_str(&format!("title: {}\nstatus: {}\nsteps: {}\n", summary.title, summary.status, summary.steps));
    }
    out.push_str("newest steps:\n");
    for step in &steps {
        let number = step.number.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let line: String = step.text.lines().next().unwrap_or_default().chars().take(160).collect();
        out.push_str(&format!("  #{number} {} by {}: {line}\n", step.kind, step.actor));
    }
    if let Some(last) = steps.iter().rev().find(|s| s.kind == StepKind::Finish) {
        out.push_str(&format!("last result:\n{}\n", clip(&last.text, 4000)));
    }
    out.push_str(&changes(home, thread.tip)?);
    Ok(out)
}

pub(super) fn show(home: &Home, spec: &str) -> Result<String, String> {
    let id = home.resolve_commit(spec).map_err(|e| e.to_string())?;
    // Size-checked: the commit is the model's choice, and anyone who can push can make one of any size.
    let commit = home.find_step_commit(id, spec).map_err(|e| e.to_string())?;
    let message = commit.message_raw_sloppy().to_string();
    let author = commit.author().map(|a| format!("{} <{}>", a.name, a.email)).unwrap_or_default();
    let parents: Vec<_> = commit.parent_ids().map(|p| p.detach()).collect();
    let mut out = format!("commit {id}\nauthor {author}\n");
    for parent in &parents {
        out.push_str(&format!("parent {parent}\n"));
    }
    out.push_str(&format!("\n{}\n", clip(message.trim_end(), 8000)));
    let now = home.file_ids(id).map_err(|e| e.to_string())?;
    let before = match parents.first() {
        Some(parent) => home.file_ids(*parent).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    out.push_str("\nfiles changed:\n");
    let changed = compare(&before, &now);
    if changed.is_empty() {
        out.push_str("  (none)\n");
    }
    for (mark, path) in changed {
        out.push_str(&format!("  {mark} {path}\n"));
    }
    Ok(out)
}

pub(super) fn read(home: &Home, spec: &str, path: &str) -> Result<String, String> {
    let commit = match home.resolve_thread(spec) {
        Ok(thread) if spec.starts_with("threads/") || !spec.contains('/') && spec != "main" => thread.tip,
        _ => home.resolve_commit(spec).map_err(|e| e.to_string())?,
    };
    let bytes = match home.file_at(commit, path) {
        Err(hal_store::StoreError::TooLarge { size, .. }) => {
            return Ok(format!("({path} is {size} bytes: too large to read here; ask for a part of it with a tool)"));
        }
        other => other.map_err(|e| e.to_string())?,
    };
    match bytes {
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(clip(&text, MAX_READ)),
            Err(error) => Ok(format!("(a binary file of {} bytes)", error.as_bytes().len())),
        },
        None => Err(format!("there is no file {path} at {spec}")),
    }
}

pub(super) fn diff(home: &Home, query: &str) -> Result<String, String> {
    let thread = home.resolve_thread(query).map_err(|e| e.to_string())?;
    let mut out = format!("thread {} against main\n", thread.id);
    out.push_str(&changes(home, thread.tip)?);
    let main = main_tip(home)?;
    let now = home.file_ids(thread.tip).map_err(|e| e.to_string())?;
    let before = home.file_ids(main).map_err(|e| e.to_string())?;
    for (mark, path) in compare(&before, &now) {
        if mark == 'D' {
            continue;
        }
        let bytes = match home.file_at(thread.tip, &path) {
            Err(hal_store::StoreError::TooLarge { size, .. }) => {
                out.push_str(&format!("\n--- {path} ({size} bytes, not shown)\n"));
                continue;
            }
            other => other.map_err(|e| e.to_string())?,
        };
        let Some(bytes) = bytes else { continue };
        let Ok(text) = String::from_utf8(bytes) else { continue };
        out.push_str(&format!("\n--- {path} ({}):\n", if mark == 'A' { "new" } else { "changed" }));
        for line in text.lines().take(DIFF_LINES) {
            out.push_str(&format!("+ {line}\n"));
        }
        if text.lines().count() > DIFF_LINES {
            out.push_str("+ …\n");
        }
    }
    Ok(out)
}

fn main_tip(home: &Home) -> Result<gix::ObjectId, String> {
    home.main_tip().map_err(|e| e.to_string())?.ok_or_else(|| "this repo has no main branch".to_owned())
}

/// The files `tip` adds (A), changes (M) or deletes (D) against `main`, as lines.
fn changes(home: &Home, tip: gix::ObjectId) -> Result<String, String> {
    let main = main_tip(home)?;
    let now = home.file_ids(tip).map_err(|e| e.to_string())?;
    let before = home.file_ids(main).map_err(|e| e.to_string())?;
    let changed = compare(&before, &now);
    if changed.is_empty() {
        return Ok("files against main: no differences\n".to_owned());
    }
    let mut out = String::from("files against main:\n");
    for (mark, path) in changed {
        out.push_str(&format!("  {mark} {path}\n"));
    }
    Ok(out)
}

/// Paths added, modified or deleted going from `before` to `now` (both sorted by path).
pub(super) fn compare(before: &[(String, gix::ObjectId)], now: &[(String, gix::ObjectId)]) -> Vec<(char, String)> {
    let old: std::collections::BTreeMap<&str, gix::ObjectId> = before.iter().map(|(p, id)| (p.as_str(), *id)).collect();
    let new: std::collections::BTreeMap<&str, gix::ObjectId> = now.iter().map(|(p, id)| (p.as_str(), *id)).collect();
    let mut out = Vec::new();
    for (path, id) in &new {
        match old.get(path) {
            None => out.push(('A', (*path).to_owned())),
            Some(previous) if previous != id => out.push(('M', (*path).to_owned())),
            Some(_) => {}
        }
    }
    out.extend(old.keys().filter(|p| !new.contains_key(*p)).map(|p| ('D', (*p).to_owned())));
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

pub(super) fn propose_merge(home: &Home, actor: &str, query: &str, reason: &str) -> Result<String, String> {
    let thread = home.resolve_thread(query).map_err(|e| e.to_string())?;
    let main = main_tip(home)?;
    let changed = changes(home, thread.tip)?;
    let moved = home.repo().merge_base(main, thread.tip).ok().flatten().is_none_or(|base| base.detach() != main);
    let mut text = format!(
        "HAL proposes merging this thread into main{}.\nAccept with `hal thread merge {}` or `git merge {}`.\n{changed}",
        if reason.trim().is_empty() { String::new() } else { format!(": {}", reason.trim()) },
        thread.id,
        thread.branch
    );
    if moved {
        text.push_str("main has moved on since the thread started: the merge makes a merge commit.\n");
    }
    // Recorded on the thread without changing its status; never on a thread whose tip says a run is under way
    // (a note of HAL's on top of it would make that tip look like HAL's to resume).
    let mut note = hal_store::NewStep::new(StepKind::System, text.clone(), ThreadStatus::Open)
        .fact(hal_runner::record::fact::PROPOSED_FOR, if actor.is_empty() { "hal" } else { actor });
    if let Some(tip) = home.steps_back(&thread).next().and_then(Result::ok)
        && let Some(status) = tip.status
    {
        if status == ThreadStatus::Running {
            return Err(format!("not proposed: thread {} is running; propose it when its run has ended", thread.id));
        }
        note.status = status;
    }
    home.append_step(hal_store::identity::HAL_ACTOR, &thread, &note).map_err(|e| e.to_string())?;
    Ok(text)
}

pub(super) fn clip(text: &str, max: usize) -> String {
    hal_store::files::clip(text, max, "")
}
