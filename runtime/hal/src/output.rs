//! Rendering data for people and for machines. Everything for stdout goes through [`outln!`] and [`out!`],
//! which return the write's error instead of panicking as `println!` does: a reader that closed the pipe
//! (`hal thread list | head -1`) ends the command quietly with exit code 0 (see `main`), as ripgrep does.

use serde::Serialize;

/// `println!` that returns its error from the enclosing function (which returns a `Result`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

/// `print!` that returns its error from the enclosing function (which returns a `Result`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)?
    }};
}

/// Print `value` as pretty JSON on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
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
