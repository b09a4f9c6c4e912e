//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// HAL: a git-native agent runtime. Everything agents know, do and decide is a commit in this repository.
#[derive(Debug, Parser)]
#[command(name = "hal", version, propagate_version = true, max_term_width = 100, disable_help_subcommand = true)]
pub struct Args {
    /// Run as if hal was started in <PATH> (like `git -C`).
    #[arg(short = 'C', value_name = "PATH", global = true, default_value = ".")]
    pub directory: PathBuf,
    /// Print data as JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace). `RUST_LOG` overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Format of log lines on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare a git repository as a HAL home repo (creating it if needed). Safe to run again, and after a
    /// `git clone` it creates local branches for the threads and actors of the clone's remotes.
    Init {
        /// The repository (default: the -C directory). A directory inside an existing repository means that
        /// repository; a directory that is in none gets a new one.
        path: Option<PathBuf>,
        /// Your actor name (default: `HAL_ACTOR`, then `git config hal.actor`, then derived from user.name).
        #[arg(long)]
        actor: Option<String>,
    },
    /// A tour in a fresh home repo: threads, forks and merges in the store; then a daemon, a help committed
    /// with git, HAL in the backchat starting a thread that runs it, and the thread merged.
    Demo {
        /// Where to make the demo repo (default: a new directory under the system's temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use the models of this home repo's hal.yaml (keys from the environment) instead of the recording
        /// shipped with HAL.
        #[arg(long)]
        live: bool,
    },
    /// Helps: YAML invocation specs, built in or committed as helps/<name>.yaml on main.
    #[command(subcommand)]
    Help(HelpCommand),
    /// Work with threads: branches whose commits are the steps of an agent's work.
    #[command(subcommand)]
    Thread(ThreadCommand),
    /// Isolates: WebAssembly components a model may call, run in the sandbox.
    #[command(subcommand)]
    Isolate(IsolateCommand),
    /// Requests no help met: what the goalie (or another router) recorded under stucks/ on its threads.
    #[command(subcommand)]
    Stuck(StuckCommand),
    /// What this home repo offers (models and whether their keys are set, helps, agents, isolates), which files
    /// are invalid and why, which threads wait for a person, and whether a daemon runs.
    Status,
    /// Run the daemon in this home repo until Ctrl-C or SIGTERM: it answers messages on threads (pushed by
    /// plain git or sent with `hal thread say`), reloads helps, agents, isolates and hal.yaml when main moves,
    /// resumes interrupted runs, and serves the local HTTP API the other commands use while it runs.
    Daemon {
        /// Port of the HTTP API on 127.0.0.1 (default: any free port; see .git/hal/daemon.json).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Play model turns from this recording (a JSON list of replies) instead of calling the models in
        /// hal.yaml: for demos and tests without an API key.
        #[arg(long, value_name = "FILE")]
        recording: Option<PathBuf>,
    },
    /// Secrets (API keys, tokens): kept outside git in a file only you can read; the repo only names them.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Talk to HAL in your backchat (or to a thread): interactive, with line editing and history, or one
    /// message with -m.
    Chat {
        /// Send this one message, print the answer and exit (exit codes of `hal help run`).
        #[arg(short, long, value_name = "TEXT")]
        message: Option<String>,
        /// Talk to this thread instead of the backchat.
        #[arg(long, value_name = "ID")]
        thread: Option<String>,
        /// Safe to run again: with -m, a second command with the same key sends nothing and shows what the first one's
        /// message got (a UUID or a job id: 1 to 255 visible ASCII characters).
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// Check who wrote every step of every thread (as `hal thread verify` does for one). Exit code 1 when a
    /// step is forged, signed by someone else or by a revoked key, or its signature does not match.
    Verify {
        /// Every thread (required: checking all of them reads every step).
        #[arg(long, required = true)]
        all: bool,
    },
    /// Halt HAL in this repo (an owner only, signed with your key): no turn, model call or tool call starts,
    /// turns in flight end at their next step with ERROR, and commands that start work are refused, in every
    /// process and daemon using the repo, until `hal resume`. Kept on `refs/hal/halt`.
    Halt {
        /// Why, one line (shown in every run it ends).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a halt (an owner only, signed with your key).
    Resume {
        /// Why, one line.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Approve what a thread waits on: a tool call at autonomy level AL1 (`policy` in hal.yaml), or more of a budget
    /// it reached (`--amount`). An owner only, signed with your key over exactly that. The run goes on, and this
    /// shows it until its turn ends.
    Approve {
        /// Thread id, unique prefix or branch (`backchat` for yours).
        thread: String,
        /// The call's number in its reply, as the approval request shows it (checked, when given).
        call: Option<u32>,
        /// `once`: this call; `thread`: every call of this tool on this thread from now on; `always`: this call,
        /// and a change of hal.yaml's policy committed to main with your signature (the tool acts and tells, AL2).
        #[arg(long, value_enum, default_value = "once")]
        scope: ApprovalScope,
        /// For a run waiting on a budget: how much more it may spend, in the budget's unit (tokens, or dollars).
        #[arg(long)]
        amount: Option<f64>,
    },
    /// Refuse what a thread waits on, a call or more budget (an owner only, signed): the model hears your reason.
    Deny {
        /// Thread id, unique prefix or branch (`backchat` for yours).
        thread: String,
        /// The call's number in its reply, as the approval request shows it (checked, when given).
        call: Option<u32>,
        /// Why: the model reads it.
        #[arg(long, required = true)]
        reason: String,
    },
    /// Actors: people and programs, with the keys they sign with.
    #[command(subcommand)]
    Actor(ActorCommand),
    /// Print a completion script for your shell, generated from this command line's definition
    /// (`hal completions bash > ~/.local/share/bash-completion/completions/hal`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from this command line's definition (`hal man | man -l -`).
    Man,
}

/// `hal actor …`
#[derive(Debug, Subcommand)]
pub enum ActorCommand {
    /// Print the keys that count (added by commits an owner signed, not revoked) as an allowed-signers file,
    /// for `git config gpg.ssh.allowedSignersFile`; `git verify-commit` and `git log --show-signature` then
    /// check HAL's signatures.
    AllowedSigners {
        /// Also write it to .git/hal/allowed_signers, the file `hal init` points git at.
        #[arg(long)]
        write: bool,
    },
}

/// `hal secret …`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret's value, typed at a hidden prompt (or read from standard input when it is not a
    /// terminal). Never put a secret on the command line or in a chat.
    Set {
        /// The secret's name, as hal.yaml and isolate manifests name it (e.g. OPENAI_API_KEY).
        name: String,
    },
    /// The secrets this repo needs, whether each is set, and who needs it (values are never shown).
    List,
    /// Remove a secret from the store.
    Unset {
        /// The secret's name.
        name: String,
    },
}

/// `hal isolate …`
#[derive(Debug, Subcommand)]
pub enum IsolateCommand {
    /// List the isolates: built-in ones and those committed under isolates/<name>/ on main.
    List,
    /// Show one isolate: its functions with their argument schemas, what it asks for and is granted, its limits.
    Show {
        /// The isolate's name.
        name: String,
    },
    /// Build the isolates and plugins on main that are Rust or Python source not built yet (and try again those
    /// whose build failed), with the daemon when one runs. Exit code 1 when one does not build or load.
    Build {
        /// Only this one (the others are built too, but only its result decides the exit code).
        name: Option<String>,
    },
    /// Call one function in the sandbox, for debugging. Exit code 1 when the call fails.
    Call {
        /// The isolate's name.
        name: String,
        /// The function.
        function: String,
        /// The arguments, a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
        /// Run against this thread's files; writes become one step on it.
        #[arg(long, value_name = "ID")]
        thread: Option<String>,
        /// Safe to run again (with --thread): a second call with the same key runs nothing and shows what the
        /// first one answered (a UUID or a job id: 1 to 255 visible ASCII characters).
        #[arg(long, value_name = "KEY", requires = "thread")]
        idempotency_key: Option<String>,
    },
}

/// `hal thread …`
#[derive(Debug, Subcommand)]
pub enum ThreadCommand {
    /// Start a new thread and print its id.
    New {
        /// Start from this thread, branch or commit instead of `main`.
        #[arg(long, value_name = "THREAD-OR-REF")]
        from: Option<String>,
        /// A title for the thread.
        #[arg(long)]
        title: Option<String>,
    },
    /// List threads: id, status, step count, last activity and title. Threads made by `hal help test` and
    /// `hal thread replay` are left out unless --all is given.
    List {
        /// Every thread, test cases' and replays' too.
        #[arg(long)]
        all: bool,
    },
    /// Show a thread's steps, newest last.
    Log {
        /// Thread id, unique prefix or branch.
        id: String,
        /// Show only the newest <COUNT> steps.
        #[arg(short = 'n', value_name = "COUNT")]
        count: Option<usize>,
    },
    /// Add a user message to a thread (`-` reads the message from stdin). On a thread whose last run ended
    /// PENDING, the message is the answer: the run resumes and its status and output are printed, with the
    /// exit codes of `hal help run`.
    Say {
        /// Thread id, unique prefix or branch.
        id: String,
        /// The message; several words are joined with spaces (`-` reads it from stdin; put `--` before a message
        /// that starts with `-`).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Safe to run again: a second command with the same key sends nothing and shows what the first one's
        /// message got (a UUID or a job id: 1 to 255 visible ASCII characters).
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Switch the thread to this agent (`agents/<name>.yaml`): it answers this message and the next ones, with
        /// its persona, model and lists. The message records the switch.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Write stdin to a file in the thread's tree, as one step.
    Write {
        /// Thread id, unique prefix or branch.
        id: String,
        /// Path of the file inside the thread's tree.
        path: String,
        /// Describe the change (default: "write <path> (<n> bytes)").
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Start a new thread that continues another one from its tip or from one of its steps.
    Fork {
        /// Thread id, unique prefix or branch to fork.
        id: String,
        /// The step (commit id or prefix) to fork at.
        #[arg(long, value_name = "COMMIT")]
        at: Option<String>,
    },
    /// Accept a thread's work into `main`. Exit code 1 and the conflicting paths when it cannot merge cleanly.
    Merge {
        /// Thread id, unique prefix or branch.
        id: String,
    },
    /// Let HAL go on with a frozen thread from where its branch is now. A thread is frozen when its branch was
    /// moved back or sideways (a `git reset`, a push that replaced it): HAL then acts on nothing of it and
    /// writes nothing on it until an owner has looked (signed with their key). A system step records who unfroze it.
    Unfreeze {
        /// Thread id, unique prefix or branch.
        id: String,
    },
    /// Check who wrote each step of a thread: its signature against the keys that count. Lists the unsigned
    /// and wrong steps by commit; exit code 1 when a step is forged, signed by someone else or by a revoked
    /// key, or its signature does not match.
    Verify {
        /// Thread id, unique prefix or branch.
        id: String,
    },
    /// Run a thread's requests again on a new thread, playing back its recorded model replies, and report
    /// where the new run differs (a different tool call or result). Exit code 1 when it differs.
    Replay {
        /// Thread id, unique prefix or branch.
        id: String,
        /// Start the replay from this commit or ref instead of where the original started.
        #[arg(long, value_name = "REF")]
        from: Option<String>,
        /// Safe to run again: a second replay with the same key starts nothing and reports on the first one's
        /// thread (a UUID or a job id: 1 to 255 visible ASCII characters).
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
}

/// `hal help …`
#[derive(Debug, Subcommand)]
pub enum HelpCommand {
    /// List the helps: built-in ones and those on main (which override built-ins of the same name).
    List,
    /// Write a commented skeleton of a help to helps/<name>.yaml, to edit, validate and commit on main.
    New {
        /// The help's name: lowercase letters, digits, `-` and `_`, as commands name it.
        name: String,
    },
    /// Show one help: where it comes from and its text.
    Show {
        /// The help's name.
        name: String,
    },
    /// Check help files (and agent files, under an `agents/` directory) against their schemas. Exit code 1 if
    /// any is invalid.
    Validate {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a help on a new thread (or resume a thread) and print its status and output. Exit code 0 DONE,
    /// 3 PENDING, 4 NOCANDO, 1 ERROR.
    Run {
        /// The help's name.
        name: String,
        /// The request; several words are joined with spaces (`-` reads it from stdin; put `--` before a
        /// request that starts with `-`).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Run on this thread (its history is the context; a PENDING thread resumes).
        #[arg(long, value_name = "ID")]
        thread: Option<String>,
        /// Work as this agent (default: hal): its persona opens the system prompt.
        #[arg(long, value_name = "NAME", default_value = "hal")]
        agent: String,
        /// Safe to run again: a second command with the same key sends nothing and shows what the first one's
        /// message got (a UUID or a job id: 1 to 255 visible ASCII characters).
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// Copy a help another home repo shares (`<git-url>[#<path>]`, e.g. `https://host/helps.git#helps/notes.yaml`;
    /// without a path, the source's one help under helps/)
    /// with the isolates and plugins its commands name, onto a new thread to merge; pinned by the source commit.
    /// Nothing it brings is granted anything here.
    Add {
        /// The source: a git URL, then `#` and the help file's path in that repository (needed when it has several).
        source: String,
        /// Name it so here (default: its file's name).
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
    },
    /// Propose the newer version of a help `hal help add` brought (its first line names the source) on a new
    /// thread, showing the difference; `up to date` when the source has not moved.
    Update {
        /// The help's name.
        name: String,
    },
    /// Run a help's `tests` section and report each case (cases with `assess` are judged by an assessor help).
    /// Exit code 1 when any run of a case fails.
    Test {
        /// The help's name.
        name: String,
        /// Work as this agent (default: hal).
        #[arg(long, value_name = "NAME", default_value = "hal")]
        agent: String,
        /// Run each case this many times and report its pass rate (model output varies).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        iterations: u32,
    },
}

/// How far `hal approve` reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApprovalScope {
    /// This call only.
    Once,
    /// Every call of the same tool on this thread from now on.
    Thread,
    /// This call, and a signed change of hal.yaml's policy on main: the tool acts and tells (AL2) from now on.
    Always,
}

impl From<ApprovalScope> for hal_trust::approval::Scope {
    fn from(scope: ApprovalScope) -> Self {
        match scope {
            ApprovalScope::Once => hal_trust::approval::Scope::Once,
            ApprovalScope::Thread => hal_trust::approval::Scope::Thread,
            ApprovalScope::Always => hal_trust::approval::Scope::Always,
        }
    }
}

/// `hal stuck` subcommands.
#[derive(Debug, Subcommand)]
pub enum StuckCommand {
    /// Every stuck request across threads (and main), newest first: what was asked, what was missing, the helps
    /// tried, and the help proposed for it, if any.
    List {
        /// Those of `hal help test` cases and thread replays too.
        #[arg(long)]
        all: bool,
    },
}
