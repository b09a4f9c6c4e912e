//! `hal init`

use std::path::Path;

use anyhow::{Context, Result};
use hal_store::Home;

use super::CommandEnd;
use crate::cli::Args;
use crate::output;

/// Prepare the repository and say what changed.
pub fn run(args: &Args, path: Option<&Path>, actor: Option<&str>) -> Result<CommandEnd> {
    let target = match path {
        Some(path) => args.directory.join(path),
        None => args.directory.clone(),
    };
    let (_home, report) =
        Home::init(&target, actor).with_context(|| format!("cannot prepare {} as a home repo", target.display()))?;
    if args.json {
        output::json(&report)?;
        return Ok(CommandEnd::Done);
    }
    let mut changes = Vec::new();
    if report.created_repository {
        changes.push("created a git repository".to_owned());
    }
    if report.committed_config {
        changes.push(format!("committed {} on main", hal_store::CONFIG_FILE));
    }
    if !report.created_actors.is_empty() {
        changes.push(format!("created actor branches: {}", report.created_actors.join(", ")));
    }
    if !report.adopted_branches.is_empty() {
        changes.push(format!(
            "created {} local branches for threads and actors of remotes",
            report.adopted_branches.len()
        ));
    }
    if changes.is_empty() {
        outln!("{} is already a HAL home repo (you are `{}`)", report.path.display(), report.actor);
    } else {
        outln!("HAL home repo ready in {} (you are `{}`)", report.path.display(), report.actor);
        for change in changes {
            outln!("  - {change}");
        }
    }
    if let Some(key) = &report.key {
        outln!("Your commits through HAL are signed with {}; HAL's with its own key on this machine.", key.display());
    }
    if let Some(signers) = &report.allowed_signers {
        outln!("git checks both with {} (`git log --show-signature`).", signers.display());
    }
    Ok(CommandEnd::Done)
}
