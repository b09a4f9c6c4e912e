//! Rendering data for people and for machines. Everything for stdout goes through [`outln!`] and [`out!`],
//! which return the write's error instead of panicking as `println!` does: a reader that closed the pipe
//! (`hal thread list | head -1`) ends the command quietly with exit code 0 (see `main`), as ripgrep does.

use serde::Serialize;

/// `println!` that returns its error from the enclosing function (which returns a `Result`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err($crate::output::StdoutError)?
    }};
}

/// `print!` that returns its error from the enclosing function (which returns a `Result`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err($crate::output::StdoutError)?
    }};
}

/// Writing to stdout failed; `main` ends quietly when the reader closed the pipe.
#[derive(Debug)]
pub struct StdoutError(pub std::io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Print `value` as pretty JSON on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Write `bytes` to stdout as they are (a generated script or manual page).
pub fn bytes(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::io::stdout().write_all(bytes).map_err(StdoutError)?;
    Ok(())
}

/// A moment (seconds since the Unix epoch) in the local time zone, to the minute or second.
pub fn local_time(seconds: i64, with_seconds: bool) -> String {
    const MINUTES: gix::date::time::CustomFormat = gix::date::time::CustomFormat::new("%Y-%m-%d %H:%M");
    const SECONDS: gix::date::time::CustomFormat = gix::date::time::CustomFormat::new("%Y-%m-%d %H:%M:%S");
    let offset = gix::date::Time::now_local_or_utc().offset;
    let time = gix::date::Time::new(seconds, offset);
    time.format_or_unix(if with_seconds { SECONDS } else { MINUTES })
}

/// Shorten a commit id for display.
pub fn short(id: &impl std::fmt::Display) -> String {
    let mut text = id.to_string();
    text.truncate(10);
    text
}
