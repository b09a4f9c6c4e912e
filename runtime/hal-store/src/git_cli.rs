//! The `git` program, for the few things gix does not do: checking out a moved branch, writing local
//! configuration, pointing an unborn HEAD elsewhere, and garbage collection.

use std::path::Path;
use std::process::Command;

use crate::{Result, StoreError};

/// `git --git-dir <git_dir>`, ready for arguments.
pub(crate) fn in_git_dir(git_dir: &Path) -> Command {
    let mut command = Command::new("git");
    command.arg("--git-dir").arg(git_dir);
    command
}

/// `git -C <work_tree>`, ready for arguments.
pub(crate) fn in_work_tree(work_tree: &Path) -> Command {
    let mut command = Command::new("git");
    command.arg("-C").arg(work_tree);
    command
}

/// Run `command` with `args` to completion; a failure carries what git printed on stderr.
pub(crate) fn run(mut command: Command, args: &[&str]) -> Result<()> {
    let failed = |detail: String| StoreError::GitCommand { args: args.join(" "), detail };
    let output = command.args(args).output().map_err(|error| failed(error.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(String::from_utf8_lossy(&output.stderr).trim().to_owned()))
    }
}
