//! `hal daemon`: run the daemon in the home repo until Ctrl-C or SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use hal_daemon::{Daemon, DaemonOptions};
use hal_model::Reply;
use hal_runner::model::{Models, Recording};

use super::CommandEnd;
use crate::cli::Args;

/// Model replies played by a daemon started with `--recording`.
pub fn recording_models(replies: Vec<Reply>) -> Arc<dyn Models> {
    Arc::new(Arc::new(Recording::new(replies, Vec::new())))
}

/// `hal daemon [--port N] [--recording FILE]`
pub fn run(args: &Args, port: u16, recording: Option<&Path>) -> Result<CommandEnd> {
    let models = match recording {
        Some(path) => {
            let path = args.directory.join(path);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let replies: Vec<Reply> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a list of model replies", path.display()))?;
            Some(recording_models(replies))
        }
        None => None,
    };
    let options = DaemonOptions { models, port, ..DaemonOptions::default() };
    let directory = args.directory.clone();
    // The banner is best effort: a daemon whose stdout went away keeps serving.
    let banner = |info: &hal_daemon::protocol::DaemonInfo| -> Result<(), crate::output::StdoutError> {
        outln!(
            "hal daemon {} serving {} on http://{} (pid {}); stop with Ctrl-C",
            info.version,
            directory.display(),
            info.address,
            info.pid
        );
        if recording.is_some() {
            outln!("model: a recording, not a live model");
        }
        Ok(())
    };
    Daemon::run(&directory, options, |info| drop(banner(info)))?;
    outln!("hal daemon stopped");
    Ok(CommandEnd::Done)
}
