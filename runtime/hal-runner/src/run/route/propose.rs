//! The stuck-finder proposed a new help: the route's author writes it on a thread of its own, and the proposal
//! stands only when that thread holds the help, valid, and nothing else.

use gix::ObjectId;
use hal_spec::Route;

use super::super::{RunState, Runner, first_line};
use super::advice::Advice;
use super::gate::Ran;
use crate::error::RunError;
use crate::record::fact;
use crate::status::Status;
use crate::stuck::Proposed;

/// What came of a proposal.
pub(super) enum Proposal {
    /// A help to merge.
    Made(Proposed),
    /// None, and why.
    Not(String),
    /// The run ended before the author could start (see [`Ran::Ended`]).
    Ended(Box<crate::run::Outcome>),
}

impl Runner {
    /// Run the route's author on the help the stuck-finder proposed: the thread it wrote it on, once the author is
    /// done and the thread holds that help, valid, and nothing else. The author's thread, whatever came of it, is
    /// added to the round's `facts` (a replay plays its recording back there).
    pub(super) async fn propose_help(
        &self,
        state: &mut RunState<'_>,
        route: &Route,
        advice: &Advice,
        asked: &str,
        facts: &mut Vec<(String, String)>,
    ) -> Result<Proposal, RunError> {
        let valid = |name: &&String| {
            name.len() <= 64
                && hal_spec::is_name(name)
                && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        let Some(name) = advice.help.as_ref().filter(valid) else {
            return Ok(Proposal::Not(
                "the stuck-finder named no valid help name (lowercase letters, digits, - and _)".into(),
            ));
        };
        if self.catalog.entry(name).is_some() {
            return Ok(Proposal::Not(format!("a help named `{name}` exists already")));
        }
        let author = route.author();
        if let Err(why) = self.routable(state, route, author) {
            return Ok(Proposal::Not(why));
        }
        let description = advice.description.as_deref().unwrap_or(&advice.missing);
        let input = format!(
            "Write a help named `{name}` (helps/{name}.yaml): {description}\n\nIt is for requests like this one, which \
             no help here meets: {asked}"
        );
        // From main, and compared with main: what the router's thread holds is not the proposal's to bring.
        let Some(base) = self.journal.with(|home| home.main_tip())? else {
            return Ok(Proposal::Not("this repo has no main to propose a help to".to_owned()));
        };
        let (outcome, thread) = match self.run_for_route(state, author, &input, base).await? {
            Ran::Done(outcome, thread) => (*outcome, thread),
            Ran::Refused(why) => return Ok(Proposal::Not(why)),
            Ran::Ended(outcome) => return Ok(Proposal::Ended(outcome)),
        };
        facts.push((fact::AUTHORED.to_owned(), thread.clone()));
        if outcome.status != Status::Done {
            return Ok(Proposal::Not(format!(
                "its author ended {} on thread {thread}: {}",
                outcome.status,
                first_line(&outcome.output)
            )));
        }
        if let Some(problem) = self.proposal_problem(state, base, &thread, name)? {
            return Ok(Proposal::Not(format!("what its author wrote on thread {thread} is not to merge: {problem}")));
        }
        Ok(Proposal::Made(Proposed { help: name.clone(), thread, status: outcome.status.to_string() }))
    }

    /// What is wrong with the author's thread `thread` (started at `base`) as a proposal of help `name`: it must
    /// change `helps/<name>.yaml` and nothing else, and that help must check out as `helps.check` checks it.
    fn proposal_problem(
        &self,
        state: &RunState<'_>,
        base: ObjectId,
        thread: &str,
        name: &str,
    ) -> Result<Option<String>, RunError> {
        let home = self.journal.handle();
        let sub = home.resolve_thread(&format!("threads/{}/{thread}", state.actor))?;
        let before: std::collections::BTreeMap<String, ObjectId> = home.file_ids(base)?.into_iter().collect();
        let after: std::collections::BTreeMap<String, ObjectId> = home.file_ids(sub.tip)?.into_iter().collect();
        let path = format!("{}/{name}.yaml", crate::catalog::HELPS_DIR);
        let mut changed: Vec<&str> =
            after.iter().filter(|(p, id)| before.get(*p) != Some(id)).map(|(p, _)| p.as_str()).collect();
        changed.extend(before.keys().filter(|p| !after.contains_key(*p)).map(String::as_str));
        if changed.iter().any(|changed| *changed != path) {
            return Ok(Some(format!("it changes more than {path}: {}", changed.join(", "))));
        }
        let bytes = match home.file_at_most(sub.tip, &path, hal_store::MAX_SPEC_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Some(format!("it has no {path}"))),
            Err(error @ hal_store::StoreError::TooLarge { .. }) => return Ok(Some(error.to_string())),
            Err(error) => return Err(error.into()),
        };
        let text = String::from_utf8_lossy(&bytes);
        let problem = crate::help_check::check(&self.toolbox.names(), &self.catalog, name, &path, &text).err();
        Ok(problem)
    }
}
