//! Work that takes seconds on this machine (installing componentize-py, building a plugin or an isolate, compiling a
//! component the first time), shown while it goes: on a terminal, a spinner with the time so far (`indicatif`);
//! elsewhere (a log, CI, a pipe), one plain line when it starts and one when it ends.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Work under way, shown until [`Work::done`] (or, ended otherwise, left as it stood).
pub(crate) struct Work {
    what: String,
    started: Instant,
    spinner: Option<ProgressBar>,
}

/// Start showing `what` (`building plugin `convert` with componentize-py`).
pub(crate) fn start(what: impl Into<String>) -> Work {
    let what = what.into();
    tracing::info!(target: "hal_sandbox", "{what}");
    let spinner = std::io::stderr().is_terminal().then(|| {
        let style = ProgressStyle::with_template("hal: {spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let spinner = ProgressBar::new_spinner().with_style(style).with_message(what.clone());
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    });
    if spinner.is_none() {
        eprintln!("hal: {what}");
    }
    Work { what, started: Instant::now(), spinner }
}

impl Work {
    /// It ended well: say so, with how long it took.
    pub(crate) fn done(mut self) {
        let took = format!("{:.1} s", self.started.elapsed().as_secs_f64());
        match self.spinner.take() {
            Some(spinner) => spinner.finish_with_message(format!("{} (done in {took})", self.what)),
            None => eprintln!("hal: {} (done in {took})", self.what),
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        // Ended by an error: the error says what happened; the spinner stops where it was.
        if let Some(spinner) = self.spinner.take() {
            spinner.abandon();
        }
    }
}
