//! The stuck-finder proposed a new help: the route's author writes it on a thread of its own, and the proposal
//! stands only when that thread holds the help, valid, and nothing else.

use gix::ObjectId;
use hal_spec::Route;

use super::super::{RunState, Runner, first_line};
use super::Gate;
use super::advice::Advice;
use crate::error::RunError;
use crate::record::fact;
use crate::status::Status;
use crate::stuck::Proposed;

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
    ) -> Result<Result<Proposed, String>, RunError> {
        let valid = |name: &&String| {
            name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
                && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        let Some(name) = advice.help.as_ref().filter(valid) else {
            return Ok(Err("the stuck-finder named no valid help name (lowercase letters, digits, - and _)".into()));
        };
        if self.catalog.entry(name).is_some() {
            return Ok(Err(format!("a help named `{name}` exists already")));
        }
        let author = route.author();
        if let Err(why) = self.routable(state, route, author) {
            return Ok(Err(why));
        }
        let tell = match self.gate(state, author, asked).await? {
            Gate::Go(tell) => tell,
            Gate::Refused(why) => return Ok(Err(why)),
            Gate::Later(_) => return Ok(Err(format!("`{author}` may not run now under the rate limits"))),
        };
        let description = advice.description.as_deref().unwrap_or(&advice.missing);
        let input = format!(
            "Write a help named `{name}` (helps/{name}.yaml): {description}\n\nIt is for requests like this one, which \
             no help here meets: {asked}"
        );
        let base = state.tip;
        let (outcome, thread) = match self.run_for_route(state, author, &input).await? {
            Ok(ran) => ran,
            Err(why) => return Ok(Err(why)),
        };
        facts.push((fact::AUTHORED.to_owned(), thread.clone()));
        self.tell_routed(state, tell, &outcome);
        if outcome.status != Status::Done {
            return Ok(Err(format!(
                "its author ended {} on thread {thread}: {}",
                outcome.status,
                first_line(&outcome.output)
            )));
        }
        if let Some(problem) = self.proposal_problem(state, base, &thread, name)? {
            return Ok(Err(format!("what its author wrote on thread {thread} is not to merge: {problem}")));
        }
        Ok(Ok(Proposed { help: name.clone(), thread, status: outcome.status.to_string() }))
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
        let before = home.file_ids(base)?;
        let after = home.file_ids(sub.tip)?;
        let path = format!("{}/{name}.yaml", crate::catalog::HELPS_DIR);
        let mut changed: Vec<&str> =
            after.iter().filter(|file| !before.contains(file)).map(|(p, _)| p.as_str()).collect();
        changed.extend(before.iter().filter(|(p, _)| !after.iter().any(|(q, _)| q == p)).map(|(p, _)| p.as_str()));
        if changed.iter().any(|changed| *changed != path) {
            return Ok(Some(format!("it changes more than {path}: {}", changed.join(", "))));
        }
        let Some(bytes) = home.file_at(sub.tip, &path)? else {
            return Ok(Some(format!("it has no {path}")));
        };
        let text = String::from_utf8_lossy(&bytes);
        let problem = crate::help_check::check(&self.toolbox.names(), &self.catalog, name, &path, &text).err();
        Ok(problem)
    }
}
