//! Replaying a thread: its requests run again on a new thread through the real runner, tools and store, with
//! the model's turns played back from the original's records instead of calling a model. The report says whether
//! the replay did what the original did and, if not, where it first went another way (a different tool call or
//! result, a different ending).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hal_store::{Home, Step, StepKind, ThreadRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::RunError;
use crate::model::Recording;
use crate::record::{ReplyData, StepData, ToolData, fact};
use crate::run::Runner;

/// One request of the original thread that started a run.
#[derive(Debug, Clone)]
struct RunInput {
    actor: String,
    help: String,
    blob: Option<String>,
    text: String,
}

/// What a thread's runs did, step by step, in a form two runs can be compared in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trace {
    /// A tool call and its result.
    Tool {
        /// The tool.
        name: String,
        /// Its arguments.
        arguments: String,
        /// Its result (for a sub-help, without the sub-thread's id).
        result: String,
        /// `ok` or `error`.
        outcome: String,
    },
    /// The end of a run.
    Finish {
        /// `DONE`, …
        status: String,
        /// Its output.
        output: String,
    },
}

/// Where a replay first differed from the original.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Divergence {
    /// The step number on the original thread (`None` when the original had no step there).
    pub original_step: Option<u64>,
    /// The step number on the replay thread (`None` when the replay had no step there).
    pub replay_step: Option<u64>,
    /// What the original did.
    pub expected: Option<Trace>,
    /// What the replay did.
    pub got: Option<Trace>,
}

/// The result of a replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayReport {
    /// The thread replayed.
    pub original: String,
    /// The new thread the replay ran on.
    pub replay: String,
    /// How many runs were replayed.
    pub runs: usize,
    /// How many tool calls and endings were compared.
    pub compared: usize,
    /// The first difference, if any.
    pub divergence: Option<Divergence>,
    /// Things worth knowing (a help that changed since the original, replies left unplayed).
    pub notes: Vec<String>,
}

impl ReplayReport {
    /// Whether the replay did exactly what the original did.
    pub fn matches(&self) -> bool {
        self.divergence.is_none()
    }
}

/// The steps of a thread's conversation, oldest first.
fn steps_of(home: &Home, thread: &ThreadRef) -> Result<Vec<Step>, RunError> {
    let mut steps: Vec<Step> = home.steps_back(thread).collect::<Result<_, _>>()?;
    steps.reverse();
    Ok(steps)
}

/// The recorded model turns of `thread` and, in order, of the sub-threads its help calls ran on.
pub fn recording_of(home: &Home, thread: &ThreadRef) -> Result<Recording, RunError> {
    Recorder::default().recording(home, &steps_of(home, thread)?, None)
}

/// Builds the recording of a thread's steps, each sub-run played from the run of its sub-thread it was.
#[derive(Default)]
struct Recorder {
    /// The recordings of each sub-thread's runs not played yet, by its id, in the order they ran (empty while
    /// it is being read: a sub-thread named from within itself plays nothing).
    runs: HashMap<String, VecDeque<Arc<Recording>>>,
    /// The replay's thread for each original thread, shared by every recording made ([`Recording::of_thread`]).
    threads: Arc<std::sync::Mutex<HashMap<String, String>>>,
}

impl Recorder {
    /// The recording in a thread's `steps` (oldest first; of the original sub-thread `origin`, when a sub-run's),
    /// reading its sub-threads from `home`.
    fn recording(&mut self, home: &Home, steps: &[Step], origin: Option<&str>) -> Result<Recording, RunError> {
        let mut replies = Vec::new();
        let mut subruns = Vec::new();
        for step in steps {
            if step.kind == StepKind::Reply {
                // A replay runs the recorded calls with the repo's grants: only calls HAL's own model client
                // received may be played back, never a reply someone pushed.
                if !home.wrote(step.commit)? {
                    return Err(bad(
                        step,
                        "this reply was not written by this HAL (it is not in its local record, .git/hal/record), \
                         so its tool calls are not played back; replay the thread in the repository that ran it",
                    ));
                }
                replies.push(ReplyData::required(step)?.reply);
            }
            // The sub-runs, in the order they ran: a help call's (its `tool` step), or a router's round's (the help
            // it ran, its stuck-finder, its author, on whichever step ends the round). A sub-thread named again is
            // its next run: an answer to its question went on to it (a caller's answer, or a person's that a
            // router passed on).
            let ran: &[&str] = match (&step.kind, step.fact(fact::ROUND)) {
                (StepKind::Tool, None) => &[fact::SUBTHREAD],
                (_, Some(_)) => &[fact::SUBTHREAD, fact::STUCK_FINDER, fact::AUTHORED],
                _ => &[],
            };
            // Only HAL's own steps name the sub-threads its runs ran on: a pushed step's facts name nothing.
            let names: Vec<&str> = ran.iter().filter_map(|key| step.fact(key)).collect();
            if !names.is_empty() && home.wrote(step.commit)? {
                for sub in names {
                    subruns.push(self.next_run(home, sub)?);
                }
            }
        }
        Ok(Recording::of_thread(replies, subruns, origin.map(str::to_owned), self.threads.clone()))
    }

    /// The recording of the next run of sub-thread `id` (each run begins at a request on it: the caller's input, or
    /// an answer that went on to it; HAL's notes to its model within a run are not requests).
    fn next_run(&mut self, home: &Home, id: &str) -> Result<Arc<Recording>, RunError> {
        if !self.runs.contains_key(id) {
            self.runs.insert(id.to_owned(), VecDeque::new());
            let steps = steps_of(home, &home.resolve_thread(id)?)?;
            let mut runs = VecDeque::new();
            let is_request = |i: &usize| crate::conversation::is_persons_message(&steps[*i]);
            let starts: Vec<usize> = (0..steps.len()).filter(is_request).collect();
            for (n, &from) in starts.iter().enumerate() {
                let to = starts.get(n + 1).copied().unwrap_or(steps.len());
                runs.push_back(Arc::new(self.recording(home, &steps[from..to], Some(id))?));
            }
            self.runs.insert(id.to_owned(), runs);
        }
        let runs = self.runs.get_mut(id).map(VecDeque::pop_front);
        Ok(runs.flatten().unwrap_or_else(|| Arc::new(Recording::new(Vec::new(), Vec::new()))))
    }
}

fn bad(step: &Step, reason: &str) -> RunError {
    RunError::BadRecord { commit: step.commit.to_string(), reason: reason.to_owned() }
}

/// The comparable trace of a thread's runs, with the step number of each item.
pub fn trace_of(steps: &[Step]) -> Result<Vec<(u64, Trace)>, RunError> {
    let mut trace = Vec::new();
    for step in steps {
        let number = step.number.unwrap_or_default();
        match &step.kind {
            StepKind::Tool => {
                let data = ToolData::required(step)?;
                let mut result = step.text.clone();
                if step.fact(fact::SUBTHREAD).is_some()
                    && let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(&result)
                {
                    object.remove("thread");
                    result = Value::Object(object).to_string();
                }
                // A call answering a sub-help's question names its thread, which a replay has its own of.
                let arguments = match step.fact(fact::SUBTHREAD).filter(|sub| !sub.is_empty()) {
                    Some(sub) => data.call.arguments.replace(&format!("\"{sub}\""), "\"<thread>\""),
                    None => data.call.arguments,
                };
                trace.push((
                    number,
                    Trace::Tool {
                        name: data.call.name,
                        arguments,
                        result,
                        outcome: step.fact(fact::OUTCOME).unwrap_or_default().to_owned(),
                    },
                ));
            }
            StepKind::Finish => {
                // A router's stuck names its file and the author's thread, which a replay has its own of.
                let mut output = step.text.clone();
                for key in [fact::STUCK, fact::AUTHORED] {
                    if let Some(value) = step.fact(key).filter(|value| !value.is_empty()) {
                        output = output.replace(value, &format!("<{key}>"));
                    }
                }
                let status = step.fact(fact::RESULT).unwrap_or_default().to_owned();
                trace.push((number, Trace::Finish { status, output }));
            }
            _ => {}
        }
    }
    Ok(trace)
}

/// The text of a replay's first step: how a replay of `original` started from `from` says what it is.
fn start_text(original: &str) -> (String, String) {
    (format!("replay of {original}"), format!("the start of thread {original}"))
}

/// Whether `step` is the first step of a replay of `original`, as [`replay`] writes it.
pub fn is_replay_start(step: &Step, original: &str) -> bool {
    let (title, from) = start_text(original);
    step.kind == StepKind::Start
        && step.number == Some(1)
        && step.text == format!("started thread \"{title}\" from {from}")
}

/// The longest chain of starts and relays by runs that led to `branch` or to one of the requests among `steps`, and
/// the helps whose rules held for any of them, as HAL's local record has them.
fn held_over(home: &Home, branch: &str, steps: &[Step]) -> Result<(u32, Vec<String>), hal_store::StoreError> {
    let requests = steps.iter().filter(|step| crate::conversation::is_persons_message(step));
    let keys: Vec<String> =
        std::iter::once(branch.to_owned()).chain(requests.map(|step| step.commit.to_string())).collect();
    home.chain_of(keys.iter().map(String::as_str))
}

/// The requests of `steps` that started runs.
fn inputs_of(steps: &[Step]) -> Vec<RunInput> {
    steps
        .iter()
        .filter(|step| crate::conversation::is_persons_message(step))
        .filter_map(|step| {
            Some(RunInput {
                // A message HAL relayed for a person is replayed on the person's behalf, as it ran.
                actor: step.fact(fact::FOR).unwrap_or(&step.actor).to_owned(),
                help: step.fact(fact::HELP)?.to_owned(),
                blob: step.fact(fact::HELP_BLOB).map(str::to_owned),
                text: step.text.clone(),
            })
        })
        .collect()
}

/// Replay `original` on a new thread of `actor` started from `base` (the original's starting commit when
/// `None`). With an idempotency `key`, the new thread's first step is recorded for it before anything runs
/// (see [`report_of`] for answering a retry).
pub async fn replay(
    runner: &Runner,
    actor: &str,
    original: &ThreadRef,
    base: Option<gix::ObjectId>,
    key: Option<&str>,
) -> Result<ReplayReport, RunError> {
    let journal = runner.journal().clone();
    let (steps, recording) = journal.with(|home| {
        let steps = steps_of(home, original)?;
        let recording = Recorder::default().recording(home, &steps, None)?;
        Ok::<_, RunError>((steps, recording))
    })?;
    let recording = Arc::new(recording);
    let inputs = inputs_of(&steps);
    let base = match base {
        Some(base) => base,
        None => journal.with(|home| start_parent(home, &steps))?,
    };
    let (title, from) = start_text(&original.id);
    let mut thread = journal.with(|home| {
        let thread = home.start_thread_at(actor, base, Some(&title), &from, Some(hal_store::ThreadPurpose::Replay))?;
        if let Some(key) = key {
            home.record_key(key, thread.tip)?;
        }
        // The replay is held to the rules the original's runs were held to (a run that started or messaged it),
        // for all of its runs: a call the original only proposed is not made by its replay.
        let (depth, held_by) = held_over(home, &original.branch, &steps)?;
        if !held_by.is_empty() || depth > 0 {
            home.record_depth(&thread.branch, depth, &held_by)?;
        }
        Ok::<_, hal_store::StoreError>(thread)
    })?;
    let mut notes = Vec::new();
    for input in &inputs {
        if let (Some(entry), Some(blob)) = (runner.catalog().entry(&input.help), &input.blob)
            && !blob.eq_ignore_ascii_case(&entry.blob.to_hex().to_string())
        {
            notes.push(format!(
                "help `{}` has changed since the original run ({} → {})",
                input.help,
                short(blob),
                short(&entry.blob.to_string())
            ));
        }
        let models: Arc<dyn crate::model::Models> = Arc::new(recording.clone());
        if let Err(error) = runner.run(models, &thread, &input.actor, &input.help, &input.text).await {
            notes.push(format!("a run could not start: {error}"));
            break;
        }
        thread = journal.with(|home| home.resolve_thread(&thread.branch))?;
    }
    if recording.remaining() > 0 {
        notes.push(format!("{} recorded model replies were not played", recording.remaining()));
    }
    let replayed = journal.with(|home| steps_of(home, &thread))?;
    compare(original, &thread, &steps, &replayed, notes)
}

/// The report of the replay `thread` of `original` as both threads are now: what a retry of a keyed replay
/// answers, without running anything again.
pub fn report_of(home: &Home, original: &ThreadRef, thread: &ThreadRef) -> Result<ReplayReport, RunError> {
    let (steps, replayed) = (steps_of(home, original)?, steps_of(home, thread)?);
    let notes = vec!["a replay with this idempotency key ran before: its thread, compared as it is now".to_owned()];
    compare(original, thread, &steps, &replayed, notes)
}

/// Compare the tool calls and endings of `original` (`steps`) and its replay `thread` (`replayed`).
fn compare(
    original: &ThreadRef,
    thread: &ThreadRef,
    steps: &[Step],
    replayed: &[Step],
    notes: Vec<String>,
) -> Result<ReplayReport, RunError> {
    let (expected, got) = (trace_of(steps)?, trace_of(replayed)?);
    let compared = expected.len().max(got.len());
    let divergence = (0..compared).find_map(|i| {
        let (a, b) = (expected.get(i), got.get(i));
        (a.map(|(_, t)| t) != b.map(|(_, t)| t)).then(|| Divergence {
            original_step: a.map(|(n, _)| *n),
            replay_step: b.map(|(n, _)| *n),
            expected: a.map(|(_, t)| t.clone()),
            got: b.map(|(_, t)| t.clone()),
        })
    });
    Ok(ReplayReport {
        original: original.id.clone(),
        replay: thread.id.clone(),
        runs: inputs_of(steps).len(),
        compared,
        divergence,
        notes,
    })
}

/// The commit `original`'s first step was made on: where a replay of it starts unless told otherwise.
pub fn start_of(home: &Home, original: &ThreadRef) -> Result<gix::ObjectId, RunError> {
    start_parent(home, &steps_of(home, original)?)
}

/// The commit the thread's first step was made on.
fn start_parent(home: &Home, steps: &[Step]) -> Result<gix::ObjectId, RunError> {
    let first = steps
        .first()
        .ok_or_else(|| RunError::BadRecord { commit: String::new(), reason: "the thread has no steps".to_owned() })?;
    let commit = home.resolve_commit(&format!("{}^", first.commit))?;
    Ok(commit)
}

fn short(id: &str) -> String {
    id.chars().take(10).collect()
}
