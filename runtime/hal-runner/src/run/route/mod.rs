//! A router's loop: the built-in goalie, or any help with a `route` section, picks the help for a request and the
//! runner runs it, going round with a stuck-finder while no help meets the request.
//!
//! 1. The router's model answers with the name of the help to run (or `{"help", "request"}` with the request
//!    rewritten), or NOCANDO when none fits.
//! 2. The runner runs that help on a sub-thread with the request, under the owners' policy and rate limits for it
//!    as for any call. Unless it answers NOCANDO, its ending is the router's; when it asks a question (PENDING),
//!    the answer to the router goes on to that help's run (`answer_routed`).
//! 3. Otherwise the stuck-finder (a help) is asked what is missing and how to go on: rewrite the request, pick
//!    another help, propose a new help, or give up.
//! 4. To rewrite or pick, the router's answer gets the stuck-finder's advice as its result, and its model picks
//!    again: step 1, for at most `route.rounds` picks.
//! 5. To give up, or when the rounds are used up, the router ends NOCANDO and records the stuck request as a file
//!    on its thread (`stucks/`). To propose a help, the author help (`help-author`) first writes it on a thread of
//!    its own, for a person to merge.
//!
//! Each round ends in one step on the router's thread (the answer to its pick, or its `finish`), with the round's
//! number, the help it ran and the threads it ran them on as facts.

use gix::ObjectId;
use hal_model::{Message, Reply, ToolCall};
use hal_store::{NewStep, StepKind, ThreadRef, ThreadStatus, identity::HAL_ACTOR};
use serde_json::json;

use super::{FINISH, Outcome, Routed, RunState, Runner, tool_message};
use crate::conversation::{Conversation, finish_result};
use crate::error::RunError;
use crate::record::fact;
use crate::status::Status;
use crate::stuck::{Ended, Stuck, Tried};
use crate::tools::ToolResult;

mod advice;
mod gate;
mod propose;

use advice::{Action, Advice, read_pick};
use gate::{Admit, Ran};
use propose::Proposal;

/// How far back the router's thread is read for this run's rounds.
const LOOK_BACK: usize = 2_000;

/// What a run of the router did before this round.
struct SoFar {
    /// The request the run answers.
    asked: String,
    /// Rounds ended.
    rounds: u32,
    /// The helps those rounds ran.
    tried: Vec<Tried>,
}

/// The facts of a round's step.
fn round_facts(round: u32, tried: Option<&Tried>) -> Vec<(String, String)> {
    let mut facts = vec![(fact::ROUND.to_owned(), round.to_string())];
    if let Some(tried) = tried {
        facts.push((fact::ROUTED.to_owned(), tried.help.clone()));
        facts.push((fact::SUBTHREAD.to_owned(), tried.thread.clone()));
    }
    facts
}

impl Runner {
    /// At the start of a router's run: a message answering the question a help it ran asked (its last ending) goes
    /// on to that help's run, and that run's ending is the router's. `None` when the message is a new request.
    pub(super) async fn answer_routed(&self, state: &mut RunState<'_>) -> Result<Option<Outcome>, RunError> {
        let Some(request) = state.request else { return Ok(None) };
        let home = self.journal.handle();
        let here = ThreadRef { tip: state.tip, ..state.thread.clone() };
        let (mut answer, mut before) = (None, None);
        for step in home.steps_back(&here).take(LOOK_BACK) {
            let step = step?;
            match answer {
                None if step.commit == request => answer = Some(step.text),
                None => {}
                Some(_) => {
                    before = Some(step);
                    break;
                }
            }
        }
        let (Some(answer), Some(before)) = (answer, before) else { return Ok(None) };
        // The router's own ending, as HAL wrote it: a pushed step naming a thread is no question of a routed run.
        if before.kind != StepKind::Finish || !home.wrote_on(before.commit, &here.branch)? {
            return Ok(None);
        }
        let (Some(help), Some(sub), Some(asks)) =
            (before.fact(fact::ROUTED), before.fact(fact::SUBTHREAD), before.fact(fact::SUBTHREAD_ASKS))
        else {
            return Ok(None);
        };
        let round = before.fact(fact::ROUND).and_then(|round| round.parse().ok()).unwrap_or(1);
        let help = help.to_owned();
        // Still at that question, as HAL left it: answered since, it is not this message's to take.
        let Ok(sub) = home.resolve_thread(&format!("threads/{}/{sub}", state.actor)) else { return Ok(None) };
        if ObjectId::from_hex(asks.as_bytes()).ok() != Some(sub.tip) || !home.is_tip_written(&sub.branch, sub.tip)? {
            return Ok(None);
        }
        let admitted = match self.admit_for_route(state, &help, &answer).await? {
            Admit::Go(admitted) => admitted,
            Admit::Refused(why) => {
                let reason = format!("the answer cannot go on to `{help}`: {why}");
                return self.finish(state, Status::Error, &reason, None, None).map(Some);
            }
            Admit::Ended(outcome) => return Ok(Some(*outcome)),
        };
        let thread = sub.id.clone();
        let outcome = self.run_admitted(state, admitted, sub, &answer).await?;
        self.end_routed(state, None, None, round, Tried { help, thread }, outcome).map(Some)
    }

    /// Take the router's answer `status`/`output` (from `reply`, committed as `reply_commit`): run the help it
    /// names, or go round with the stuck-finder. `Some` with the run's outcome when it ended; `None` when the
    /// model is to pick again (its answer has its result).
    pub(super) async fn route(
        &self,
        state: &mut RunState<'_>,
        conversation: &mut Conversation,
        reply: &Reply,
        reply_commit: ObjectId,
        status: Status,
        output: &str,
    ) -> Result<Option<Outcome>, RunError> {
        let route = state.prepared.help.route.clone().unwrap_or_default();
        let call = reply.tool_calls.iter().find(|call| call.name == FINISH).cloned();
        let index = reply.tool_calls.iter().position(|call| call.name == FINISH).unwrap_or(reply.tool_calls.len());
        // A pick runs its help at most once, even if HAL stops before the round's step is written.
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if !self.journal.with(|home| home.claim_call(reply_commit, index))? {
            let text = "not run again: HAL started this pick before and stopped before its result was recorded; \
                        pick again, or finish NOCANDO";
            self.answer_pick(state, conversation, call.as_ref(), ToolResult::error(text), Vec::new())?;
            return Ok(None);
        }
        // What cannot go on is the run's failure, not a need no help meets.
        if let Err(reason) = self.room_for_route(state) {
            let call_id = call.map(|call| call.id);
            return self.finish(state, Status::Error, &reason, None, call_id).map(Some);
        }
        let so_far = self.so_far(state)?;
        let round = so_far.rounds + 1;
        let mut tried = so_far.tried;
        let (asked, happened, tried_now) = match status {
            Status::Done => {
                let (help, rewritten) = read_pick(output);
                let again = rewritten.is_none() && tried.iter().any(|tried| tried.help == help);
                let refused = match self.routable(state, &route, &help) {
                    Err(why) => Some(why),
                    Ok(()) if again => Some(format!(
                        "`{help}` answered NOCANDO to this request already: pick another help, rewrite the request \
                         ({{\"help\": <name>, \"request\": <text>}}), or finish NOCANDO"
                    )),
                    Ok(()) => None,
                };
                if let Some(why) = refused {
                    self.answer_pick(state, conversation, call.as_ref(), ToolResult::error(why), Vec::new())?;
                    return Ok(None);
                }
                let asked = rewritten.unwrap_or(so_far.asked);
                let (outcome, thread) = match self.run_for_route(state, &help, &asked, state.tip).await? {
                    Ran::Done(outcome, thread) => (*outcome, thread),
                    Ran::Refused(why) => {
                        self.answer_pick(state, conversation, call.as_ref(), ToolResult::error(why), Vec::new())?;
                        return Ok(None);
                    }
                    Ran::Ended(outcome) => return Ok(Some(*outcome)),
                };
                let now = Tried { help: help.clone(), thread };
                if outcome.status != Status::Nocando {
                    // The help met the request (or asked, or failed): its ending is the router's.
                    return self.end_routed(state, Some(conversation), call, round, now, outcome).map(Some);
                }
                let happened = format!("The help `{help}` was run with it and answered NOCANDO: {}", outcome.output);
                (asked, happened, Some(now))
            }
            _ => {
                let happened = format!("The router found no help that fits: {}", output.trim());
                (so_far.asked, happened, None)
            }
        };
        tried.extend(tried_now.clone());
        // What is missing, and how to go on.
        let names: Vec<String> = tried.iter().map(|tried| format!("`{}`", tried.help)).collect();
        let names = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        let question = format!(
            "The request: {asked}\n\n{happened}\n\nHelps tried for it so far: {names}. This was round {round} of {}.",
            route.rounds()
        );
        let (advice, finder) = match self.run_for_route(state, route.stuck_finder(), &question, state.tip).await? {
            Ran::Done(outcome, thread) => (Advice::read(&outcome), thread),
            Ran::Ended(outcome) => return Ok(Some(*outcome)),
            Ran::Refused(why) => {
                let reason = format!("the stuck-finder `{}` could not run: {why}", route.stuck_finder());
                let call_id = call.map(|call| call.id);
                return self.finish(state, Status::Error, &reason, None, call_id).map(Some);
            }
        };
        let mut facts = round_facts(round, tried_now.as_ref());
        facts.push((fact::STUCK_FINDER.to_owned(), finder));
        let out_of_rounds = round >= route.rounds();
        if matches!(advice.action, Action::Rewrite | Action::Pick) && !out_of_rounds {
            let next = match advice.action {
                Action::Rewrite => {
                    "pick a help for the request as the stuck-finder rewrote it, and finish with \
                                    {\"help\": <its name>, \"request\": <the rewritten request>}"
                }
                _ => "pick again (the stuck-finder names a help), or finish NOCANDO",
            };
            let content = json!({
                "round": round,
                "rounds": route.rounds(),
                "status": Status::Nocando,
                "help": tried_now.as_ref().map(|tried| &tried.help),
                "thread": tried_now.as_ref().map(|tried| &tried.thread),
                "output": happened,
                "stuck_finder": {"missing": advice.missing, "action": advice.action(), "request": advice.request,
                    "help": advice.help},
                "next": next,
            });
            self.answer_pick(state, conversation, call.as_ref(), ToolResult::ok(content.to_string()), facts)?;
            return Ok(None);
        }
        // Stuck: propose a help when the stuck-finder says so, record the stuck, and end NOCANDO.
        let mut missing = advice.missing.clone();
        let proposed = match advice.action {
            Action::Author => match self.propose_help(state, &route, &advice, &asked, &mut facts).await? {
                Proposal::Made(proposed) => Some(proposed),
                Proposal::Not(why) => {
                    missing.push_str(&format!(" (a help for it was not proposed: {why})"));
                    None
                }
                Proposal::Ended(outcome) => return Ok(Some(*outcome)),
            },
            _ => None,
        };
        let ended = match (&proposed, advice.action) {
            (Some(_), _) => Ended::Proposed,
            (None, Action::GiveUp | Action::Author) => Ended::GaveUp,
            (None, _) => Ended::OutOfRounds,
        };
        // One file per request: a later request on this thread that gets stuck has its own.
        let key = state.request.map_or_else(|| round.to_string(), |request| request.to_hex_with_len(12).to_string());
        let path = Stuck::path(&state.thread.id, &key);
        let mut text = format!("No help here meets this request: {}", missing.trim());
        match (&proposed, ended) {
            (Some(proposed), _) => text.push_str(&format!(
                "\nA help `{}` that would is proposed on thread {}: merge that thread to add it, then ask again.",
                proposed.help, proposed.thread
            )),
            (None, Ended::OutOfRounds) => {
                text.push_str(&format!("\n{round} rounds were tried, the most this router's route.rounds allows."))
            }
            _ => {}
        }
        text.push_str(&format!("\nRecorded in {path}."));
        let stuck = Stuck {
            asked,
            missing,
            tried,
            ended,
            proposed,
            router: state.prepared.entry.name.clone(),
            rounds: round,
            of: route.rounds(),
        };
        facts.push((fact::STUCK.to_owned(), path.clone()));
        state.ending.facts = facts;
        state.ending.writes = vec![(path, stuck.to_file())];
        let call_id = call.map(|call| call.id);
        if let Some(id) = &call_id {
            conversation.push(finish_result(id.clone(), Status::Nocando.as_str(), &text));
        }
        self.finish(state, Status::Nocando, &text, None, call_id).map(Some)
    }

    /// End the router's run with the ending of the help it ran for the request.
    fn end_routed(
        &self,
        state: &mut RunState<'_>,
        conversation: Option<&mut Conversation>,
        call: Option<ToolCall>,
        round: u32,
        tried: Tried,
        outcome: Outcome,
    ) -> Result<Outcome, RunError> {
        let mut facts = round_facts(round, Some(&tried));
        if outcome.status == Status::Pending {
            // Its question: an answer to the router goes on to it (`answer_routed`).
            facts.push((fact::SUBTHREAD_ASKS.to_owned(), outcome.commit.to_string()));
        }
        state.ending.facts = facts;
        state.ending.routed = Some(Routed { help: tried.help, thread: tried.thread });
        let call_id = call.map(|call| call.id);
        if let (Some(conversation), Some(id)) = (conversation, &call_id) {
            conversation.push(finish_result(id.clone(), outcome.status.as_str(), &outcome.output));
        }
        self.finish(state, outcome.status, &outcome.output, outcome.confidence, call_id)
    }

    /// Answer the router's pick without ending the run: `result` goes back to its model (as the `finish` call's
    /// result, or as a note when it answered in plain text), with `facts` on the step.
    fn answer_pick(
        &self,
        state: &mut RunState<'_>,
        conversation: &mut Conversation,
        call: Option<&ToolCall>,
        result: ToolResult,
        facts: Vec<(String, String)>,
    ) -> Result<(), RunError> {
        match call {
            Some(call) => {
                let (mut step, result) = self.tool_step(state, call, result, Vec::new(), None)?;
                step.facts.extend(facts);
                self.append(state, HAL_ACTOR, &step)?;
                conversation.push(tool_message(call, result));
            }
            None => {
                let mut step = NewStep::new(StepKind::Message, result.content.clone(), ThreadStatus::Running)
                    .fact(fact::HELP, &state.prepared.entry.name);
                step.facts.extend(facts);
                self.append(state, HAL_ACTOR, &step)?;
                conversation.push(Message::User { text: result.content });
            }
        }
        Ok(())
    }

    /// The request this run answers and the rounds it ended, read back from the router's thread to the request.
    /// Only what HAL wrote counts: a step pushed meanwhile is neither a round nor the request.
    fn so_far(&self, state: &RunState<'_>) -> Result<SoFar, RunError> {
        let home = self.journal.handle();
        let here = ThreadRef { tip: state.tip, ..state.thread.clone() };
        let mut so_far = SoFar { asked: String::new(), rounds: 0, tried: Vec::new() };
        for step in home.steps_back(&here).take(LOOK_BACK) {
            let step = step?;
            if Some(step.commit) == state.request {
                so_far.asked = step.text;
                break;
            }
            // Without a request to stop at, an ending of HAL's is where this run's rounds begin.
            if step.kind == StepKind::Finish && home.wrote_on(step.commit, &here.branch)? {
                break;
            }
            if step.fact(fact::ROUND).is_some() && home.wrote_on(step.commit, &here.branch)? {
                so_far.rounds += 1;
                if let (Some(help), Some(thread)) = (step.fact(fact::ROUTED), step.fact(fact::SUBTHREAD)) {
                    so_far.tried.push(Tried { help: help.to_owned(), thread: thread.to_owned() });
                }
            }
        }
        so_far.tried.reverse();
        Ok(so_far)
    }
}
