//! `hal`: the command line of HAL, a git-native agent runtime.

// The output macros (`outln!`, `out!`) are used by every command: declared first.
#[macro_use]
mod output;
mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Exit code for success.
const EXIT_OK: u8 = 0;
/// Exit code for an error (bad arguments, unknown thread, not a home repo…); the same code clap uses for
/// usage errors.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    init_logging(&args);
    match commands::run(&args) {
        Ok(commands::CommandEnd::Done) => ExitCode::from(EXIT_OK),
        Ok(commands::CommandEnd::Conflict) => ExitCode::from(commands::EXIT_CONFLICT),
        Ok(commands::CommandEnd::Invalid) => ExitCode::from(commands::EXIT_INVALID),
        Ok(commands::CommandEnd::Exit(code)) => ExitCode::from(code),
        // The reader of stdout went away (`hal thread list | head -1`): nothing is wrong, stop quietly.
        Err(error) if is_broken_pipe(&error) => ExitCode::from(EXIT_OK),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Whether `error` comes from writing to stdout after its reader closed the pipe (and not from some other pipe).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<output::StdoutError>().is_some_and(|e| e.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs go to stderr; `RUST_LOG` or `-v` choose how much, `--log-format json` makes them machine-readable.
fn init_logging(args: &cli::Args) {
    use tracing_subscriber::EnvFilter;
    let default = match args.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        cli::LogFormat::Text => builder.init(),
        cli::LogFormat::Json => builder.json().init(),
    }
}
