//! How a run of a help ends.

use serde::{Deserialize, Serialize};

use hal_store::ThreadStatus;

/// The status of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The job is done; the output is the result.
    Done,
    /// More information is needed; the output is the question. The next message on the thread resumes it.
    Pending,
    /// The run failed; the output says why.
    Error,
    /// The job is outside what the help can do.
    Nocando,
}

impl Status {
    /// The name as written in trailers and shown to people (`DONE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "DONE",
            Status::Pending => "PENDING",
            Status::Error => "ERROR",
            Status::Nocando => "NOCANDO",
        }
    }

    /// Read a status name, in any case.
    pub fn parse(text: &str) -> Option<Status> {
        match text.trim().to_ascii_uppercase().as_str() {
            "DONE" => Some(Status::Done),
            "PENDING" => Some(Status::Pending),
            "ERROR" => Some(Status::Error),
            "NOCANDO" => Some(Status::Nocando),
            _ => None,
        }
    }

    /// The thread's status after a run ending this way.
    pub fn thread_status(self) -> ThreadStatus {
        match self {
            Status::Done => ThreadStatus::Done,
            Status::Pending => ThreadStatus::Pending,
            Status::Error => ThreadStatus::Error,
            Status::Nocando => ThreadStatus::Nocando,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
