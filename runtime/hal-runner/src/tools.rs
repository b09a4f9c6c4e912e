//! Tools: what a model may call. A tool describes itself (name, purpose, JSON Schema of its arguments: exactly
//! what the model is shown) and is called with arguments that already match that schema. It works on the
//! thread through a [`ToolContext`]: reads see the thread's tree as of the call plus the call's own writes, and
//! the writes land in the tool step's commit and nowhere else.
//!
//! Native Rust tools implement [`Tool`] directly; WebAssembly isolates plug in behind the same trait.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gix::ObjectId;
use hal_model::ToolSpec;

use crate::shared_home::SharedHome;

/// A boxed future, as [`Tool::call`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a tool call gives back to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// The result as text (often JSON).
    pub content: String,
    /// Whether the call failed; the content says why.
    pub is_error: bool,
}

impl ToolResult {
    /// A successful result.
    pub fn ok(content: impl Into<String>) -> ToolResult {
        ToolResult { content: content.into(), is_error: false }
    }

    /// A failed call, with the reason.
    pub fn error(reason: impl Into<String>) -> ToolResult {
        ToolResult { content: reason.into(), is_error: true }
    }
}

/// Something a model may call.
pub trait Tool: Send + Sync {
    /// Its name (`files.read`), purpose and argument schema.
    fn spec(&self) -> &ToolSpec;

    /// Other names a rule of the owners' policy may give it: the plugin version a `<name>.<function>` runs
    /// (`wc@v2.count` for `wc.count` while v2 is the newest). The strictest rule naming any of them holds.
    fn policy_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// The secrets it reads (by name): a run that offers the tool waits (`PENDING`) until each is set.
    fn needs_secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// Call it with `arguments` (valid against the schema) on the thread of `context`.
    fn call<'a>(&'a self, arguments: serde_json::Value, context: &'a mut ToolContext) -> BoxFuture<'a, ToolResult>;
}

/// What the tool calls of one run share: its limits and a count of what they did (threads started, …), so that
/// a tool can bound what one run may do however many calls the model makes.
#[derive(Clone)]
pub struct RunScope {
    /// The run's limits.
    pub limits: crate::run::RunLimits,
    /// How many threads started and messages relayed by runs led to this run (0 for a person's request), from
    /// HAL's local record: what the run starts or relays continues this chain.
    pub chain_depth: u32,
    /// The branch of the run a person's message started, when this run is a help run by another help (its steps
    /// are that run's progress).
    pub root: Option<String>,
    /// The helps whose run called this one, outermost first, and those whose run started or messaged its thread
    /// (from HAL's local record; empty for a run a person's message started): their own policy rules
    /// (`policy.helps.<help>`) hold for this run's calls too, where they are stricter.
    pub callers: Vec<String>,
    /// The help this run executes (empty for a call made outside a run).
    pub help: String,
    counts: Arc<std::sync::Mutex<BTreeMap<String, u32>>>,
}

impl RunScope {
    /// A new scope with `limits`, at the start of a chain, with nothing counted.
    pub fn new(limits: crate::run::RunLimits) -> RunScope {
        RunScope {
            limits,
            chain_depth: 0,
            root: None,
            callers: Vec::new(),
            help: String::new(),
            counts: Arc::default(),
        }
    }

    /// Count one more `what` in this run and return how many there are now.
    pub fn count(&self, what: &str) -> u32 {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(what.to_owned()).or_default();
        *count = count.saturating_add(1);
        *count
    }
}

impl Default for RunScope {
    fn default() -> RunScope {
        RunScope::new(crate::run::DEFAULT_LIMITS)
    }
}

/// The thread a tool call works on.
pub struct ToolContext {
    journal: SharedHome,
    branch: String,
    run: RunScope,
    thread: String,
    actor: String,
    config: serde_json::Map<String, serde_json::Value>,
    base: ObjectId,
    /// The call's writes by path (the last write of a path wins).
    writes: BTreeMap<String, Vec<u8>>,
    /// Hears what a long call says of its progress.
    progress: Option<Progress>,
}

/// Hears a tool's progress notes: how much is done, of how much (0 when unknown), and a message. Called from
/// whatever thread the tool runs on.
pub type Progress = Arc<dyn Fn(u64, u64, &str) + Send + Sync>;

impl ToolContext {
    /// A context on `thread` whose tree is that of commit `base`.
    pub fn new(journal: SharedHome, thread: &str, base: ObjectId) -> ToolContext {
        ToolContext {
            journal,
            branch: String::new(),
            run: RunScope::default(),
            thread: thread.to_owned(),
            actor: String::new(),
            config: serde_json::Map::new(),
            base,
            writes: BTreeMap::new(),
            progress: None,
        }
    }

    /// The same context, its progress notes heard by `progress`.
    pub fn with_progress(mut self, progress: Progress) -> ToolContext {
        self.progress = Some(progress);
        self
    }

    /// What hears the call's progress notes, if anything does.
    pub fn progress(&self) -> Option<Progress> {
        self.progress.clone()
    }

    /// The same context, for a run on behalf of `actor`.
    pub fn with_actor(mut self, actor: &str) -> ToolContext {
        actor.clone_into(&mut self.actor);
        self
    }

    /// The same context, on the thread's branch `branch` (`threads/<actor>/<id>`).
    pub fn with_branch(mut self, branch: &str) -> ToolContext {
        branch.clone_into(&mut self.branch);
        self
    }

    /// The same context, for a call made by the run whose shared scope is `run`.
    pub fn with_run(mut self, run: RunScope) -> ToolContext {
        self.run = run;
        self
    }

    /// The thread's branch (empty when not known).
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// What the calls of this run share (a fresh scope for a call made outside a run).
    pub fn run(&self) -> &RunScope {
        &self.run
    }

    /// The same context, for a run of a help whose `config` section is `config`.
    pub fn with_config(mut self, config: &serde_json::Map<String, serde_json::Value>) -> ToolContext {
        self.config.clone_from(config);
        self
    }

    /// The `config` section of the help the run executes (empty outside a run).
    pub fn config(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.config
    }

    /// On whose behalf the run works (empty when not known).
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The home repo.
    pub fn journal(&self) -> &SharedHome {
        &self.journal
    }

    /// The thread's id.
    pub fn thread(&self) -> &str {
        &self.thread
    }

    /// A new context on the same thread and tree, without this one's writes: for work done elsewhere (another
    /// thread of the process) whose writes are then applied here.
    pub fn fork(&self) -> ToolContext {
        ToolContext::new(self.journal.clone(), &self.thread, self.base)
            .with_actor(&self.actor)
            .with_config(&self.config)
            .with_branch(&self.branch)
            .with_run(self.run.clone())
    }

    /// The file at `path`, as this call sees it, when it is at most [`hal_store::MAX_FILE_BYTES`].
    pub fn read(&self, path: &str) -> hal_store::Result<Option<Vec<u8>>> {
        self.read_at_most(path, hal_store::MAX_FILE_BYTES)
    }

    /// The file at `path`, as this call sees it, when it is at most `most` bytes (a larger one is an error, read no
    /// further than its size: a pushed branch may hold a file of any size).
    pub fn read_at_most(&self, path: &str, most: u64) -> hal_store::Result<Option<Vec<u8>>> {
        let path = hal_store::tree_path::normalize(path)?;
        if let Some(bytes) = self.writes.get(&path) {
            let size = bytes.len() as u64;
            if size > most {
                return Err(hal_store::StoreError::TooLarge { path, size, most });
            }
            return Ok(Some(bytes.clone()));
        }
        self.journal.with(|home| home.file_at_most(self.base, &path, most))
    }

    /// Every file with its size, as this call sees them, sorted by path.
    pub fn list(&self) -> hal_store::Result<Vec<(String, u64)>> {
        let mut files: BTreeMap<String, u64> =
            self.journal.with(|home| home.list_files(self.base, ""))?.into_iter().collect();
        for (path, bytes) in &self.writes {
            files.insert(path.clone(), bytes.len() as u64);
        }
        Ok(files.into_iter().collect())
    }

    /// Write `content` to `path`; it lands in this call's step.
    pub fn write(&mut self, path: &str, content: Vec<u8>) -> hal_store::Result<()> {
        let path = hal_store::tree_path::normalize(path)?;
        self.writes.insert(path, content);
        Ok(())
    }

    /// How many files this call has written.
    pub fn writes_count(&self) -> usize {
        self.writes.len()
    }

    /// Whether this call has written `path` already (writing it again does not add a file).
    pub fn writes_to(&self, path: &str) -> bool {
        hal_store::tree_path::normalize(path).is_ok_and(|path| self.writes.contains_key(&path))
    }

    /// The writes made, by path, for the step's commit.
    pub fn into_writes(self) -> Vec<(String, Vec<u8>)> {
        self.writes.into_iter().collect()
    }
}

/// A thread's tree as one tool call sees it: its files as of the call, with the call's own writes, which are staged
/// for the step's commit. A tool made elsewhere (the sandbox's isolates) reads and writes through this and nothing
/// else of the runner or the store; [`ToolContext`] is the runner's implementation.
pub trait Tree: Send {
    /// The file at `path`, as this call sees it, when it is at most `most` bytes (a larger one is an error).
    fn read(&self, path: &str, most: u64) -> hal_store::Result<Option<Vec<u8>>>;
    /// Every file with its size, as this call sees them, sorted by path.
    fn list(&self) -> hal_store::Result<Vec<(String, u64)>>;
    /// Write `content` to `path` (checked by the store's path rules); it lands in this call's step.
    fn write(&mut self, path: &str, content: Vec<u8>) -> hal_store::Result<()>;
    /// How many files this call has written.
    fn writes_count(&self) -> usize;
    /// Whether this call has written `path` already (writing it again does not add a file).
    fn writes_to(&self, path: &str) -> bool;
    /// The writes made, by path, for the step's commit.
    fn into_writes(self: Box<Self>) -> Vec<(String, Vec<u8>)>;
}

impl Tree for ToolContext {
    fn read(&self, path: &str, most: u64) -> hal_store::Result<Option<Vec<u8>>> {
        ToolContext::read_at_most(self, path, most)
    }

    fn list(&self) -> hal_store::Result<Vec<(String, u64)>> {
        ToolContext::list(self)
    }

    fn write(&mut self, path: &str, content: Vec<u8>) -> hal_store::Result<()> {
        ToolContext::write(self, path, content)
    }

    fn writes_count(&self) -> usize {
        ToolContext::writes_count(self)
    }

    fn writes_to(&self, path: &str) -> bool {
        ToolContext::writes_to(self, path)
    }

    fn into_writes(self: Box<Self>) -> Vec<(String, Vec<u8>)> {
        ToolContext::into_writes(*self)
    }
}

/// A tool's argument schema is not valid JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tool `{tool}` has an invalid argument schema: {reason}")]
pub struct InvalidSchema {
    /// The tool.
    pub tool: String,
    /// What is wrong with its schema.
    pub reason: String,
}

/// A tool's argument schema, compiled at the tool's first call (or why it does not compile): a catalogue of many
/// plugin versions is listed and offered without compiling the schema of each of their functions.
type Schema = Arc<std::sync::OnceLock<Result<jsonschema::Validator, String>>>;

/// The tools a runner can offer, by name, each with its argument schema.
#[derive(Clone, Default)]
pub struct Toolbox {
    tools: BTreeMap<String, (Arc<dyn Tool>, Schema)>,
}

impl Toolbox {
    /// An empty toolbox.
    pub fn new() -> Toolbox {
        Toolbox::default()
    }

    /// Add `tool`. A tool whose schema is not valid JSON Schema (checked against the metaschema) is refused with
    /// the reason; the schema is compiled at the tool's first call.
    pub fn add(&mut self, tool: Arc<dyn Tool>) -> Result<(), InvalidSchema> {
        let name = tool.spec().name.clone();
        jsonschema::meta::validate(&tool.spec().parameters)
            .map_err(|e| InvalidSchema { tool: name.clone(), reason: e.to_string() })?;
        self.tools.insert(name, (tool, Arc::default()));
        Ok(())
    }

    /// The other names the policy may give tool `name` ([`Tool::policy_names`]).
    pub fn policy_names(&self, name: &str) -> Vec<String> {
        self.tools.get(name).map(|(tool, _)| tool.policy_names()).unwrap_or_default()
    }

    /// The names of every tool.
    pub fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    /// The tools a help's command selects: `files.read` is one tool, `files` every `files.*` tool. Empty when
    /// it selects none.
    pub fn select(&self, command: &str) -> Vec<Arc<dyn Tool>> {
        if let Some((tool, _)) = self.tools.get(command) {
            return vec![tool.clone()];
        }
        let prefix = format!("{command}.");
        self.tools.iter().filter(|(name, _)| name.starts_with(&prefix)).map(|(_, (tool, _))| tool.clone()).collect()
    }

    /// Call the tool `name` with `arguments` (raw text from the model), checking them against its schema.
    pub async fn call(&self, name: &str, arguments: &str, context: &mut ToolContext) -> ToolResult {
        let Some((tool, schema)) = self.tools.get(name) else {
            return ToolResult::error(format!("there is no tool `{name}`"));
        };
        let compiled =
            schema.get_or_init(|| jsonschema::validator_for(&tool.spec().parameters).map_err(|e| e.to_string()));
        let validator = match compiled {
            Ok(validator) => validator,
            Err(reason) => return ToolResult::error(format!("tool `{name}` has an invalid argument schema: {reason}")),
        };
        let arguments: serde_json::Value = match arguments.trim() {
            "" => serde_json::json!({}),
            text => match serde_json::from_str(text) {
                Ok(value) => value,
                Err(error) => return ToolResult::error(format!("the arguments are not valid JSON: {error}")),
            },
        };
        let problems: Vec<String> = validator
            .iter_errors(&arguments)
            .map(|e| {
                let at = e.instance_path().as_str().to_owned();
                if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
            })
            .collect();
        if !problems.is_empty() {
            return ToolResult::error(format!(
                "the arguments do not match the schema of `{name}`: {}",
                problems.join("; ")
            ));
        }
        tool.call(arguments, context).await
    }
}
