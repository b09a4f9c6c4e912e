//! Why a run could not start or continue. Anything that happens *inside* a run (a model error, a limit, a
//! failing tool) is not an error here: it ends the run with status `ERROR`, committed to the thread.

/// A run that cannot be started, or a store that failed under it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No help of that name.
    #[error("no help named `{name}` (known: {})", known.join(", "))]
    UnknownHelp {
        /// The name asked for.
        name: String,
        /// The helps there are.
        known: Vec<String>,
    },
    /// The help's file does not validate.
    #[error("help `{name}` is invalid:\n{error}")]
    InvalidHelp {
        /// The help.
        name: String,
        /// The located problems.
        error: String,
    },
    /// No agent of that name.
    #[error("no agent named `{name}` (known: {})", known.join(", "))]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The agents there are.
        known: Vec<String>,
    },
    /// The agent's file does not validate.
    #[error("agent `{name}` is invalid:\n{error}")]
    InvalidAgent {
        /// The agent.
        name: String,
        /// The located problems.
        error: String,
    },
    /// The help names a command that is neither a tool nor a help.
    #[error("help `{help}` lists the command `{command}`, which is neither a tool nor a help (tools: {})", tools.join(", "))]
    UnknownCommand {
        /// The help.
        help: String,
        /// The command.
        command: String,
        /// The tools there are.
        tools: Vec<String>,
    },
    /// The agent's file does not let it run the help, or call what the help uses.
    #[error("agent `{agent}` may not {what}: its file (agents/{agent}.yaml) does not list it under `{list}`")]
    NotAllowed {
        /// The agent.
        agent: String,
        /// What it may not do (`run help \`x\``).
        what: String,
        /// The list that would allow it: `helps` or `isolates`.
        list: &'static str,
    },
    /// `policy.disabled` in `hal.yaml` turns the help off.
    #[error("help `{0}` is turned off by policy.disabled in hal.yaml")]
    Disabled(String),
    /// No model can be chosen for the help.
    #[error("{0}")]
    NoModel(String),
    /// `hal.yaml` on `main` is invalid.
    #[error("hal.yaml on main is invalid, fix it first:\n{0}")]
    InvalidSettings(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] hal_store::StoreError),
    /// Who signed what could not be read.
    #[error("{0}")]
    Trust(String),
    /// A thread's recorded steps cannot be read back.
    #[error("step {commit} cannot be read back: {reason}")]
    BadRecord {
        /// The step's commit.
        commit: String,
        /// What is wrong.
        reason: String,
    },
}

impl RunError {
    /// A trust error as a run error (a store failure stays one).
    pub fn from_trust(error: hal_trust::TrustError) -> RunError {
        match error {
            hal_trust::TrustError::Store(error) => RunError::Store(error),
            other => RunError::Trust(other.to_string()),
        }
    }
}
