//! A router's loop: the built-in goalie, or any help with a `route` section, picks the help for a request and the
//! runner runs it, going round with a stuck-finder while no help meets the request.
//!
//! 1. The router's model answers with the name of the help to run (or `{"help", "request"}` with the request
//!    rewritten), or NOCANDO when none fits.
//! 2. The runner runs that help on a sub-thread with the request. Unless it answers NOCANDO, its ending is the
//!    router's (its question, when PENDING, crosses over to whoever called the router).
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
use hal_spec::Route;
use hal_store::{NewStep, StepKind, ThreadRef, ThreadStatus, identity::HAL_ACTOR};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FINISH, Outcome, RunState, Runner, first_line, tool_message};
use crate::conversation::{Conversation, finish_result};
use crate::error::RunError;
use crate::record::fact;
use crate::status::Status;
use crate::stuck::{Ended, Proposed, Stuck, Tried};
use crate::tools::ToolResult;

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

/// What the stuck-finder says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Action {
    Rewrite,
    Pick,
    Author,
    GiveUp,
}

/// The stuck-finder's answer.
#[derive(Debug, Deserialize)]
struct Advice {
    missing: String,
    action: Action,
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    help: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

impl Advice {
    /// The advice in a stuck-finder's ending: a JSON object, maybe inside other text. Anything else gives up, with
    /// what it said.
    fn read(outcome: &Outcome) -> Advice {
        let text = outcome.output.trim();
        let object = text.find('{').zip(text.rfind('}')).and_then(|(start, end)| text.get(start..=end));
        match object.and_then(|object| serde_json::from_str::<Advice>(object).ok()) {
            Some(advice) if outcome.status == Status::Done => advice,
            _ => Advice::give_up(format!(
                "the stuck-finder gave no advice (it ended {}: {})",
                outcome.status,
                first_line(text)
            )),
        }
    }

    fn give_up(missing: String) -> Advice {
        Advice { missing, action: Action::GiveUp, request: None, help: None, description: None }
    }

    fn action(&self) -> &'static str {
        match self.action {
            Action::Rewrite => "rewrite",
            Action::Pick => "pick",
            Action::Author => "author",
            Action::GiveUp => "give-up",
        }
    }
}

/// The help a router's answer names, and the request rewritten, when it was.
fn read_pick(output: &str) -> (String, Option<String>) {
    let text = output.trim();
    if let Ok(Value::Object(pick)) = serde_json::from_str::<Value>(text) {
        let field = |key: &str| pick.get(key).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
        return (field("help").unwrap_or_default().to_owned(), field("request").map(str::to_owned));
    }
    // A name, maybe quoted or with a full stop, as models answer.
    let name = first_line(text).trim_matches(|c: char| c == '`' || c == '"' || c == '\'' || c == '.' || c == ' ');
    (name.to_owned(), None)
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
        let so_far = self.so_far(state)?;
        let round = so_far.rounds + 1;
        let mut tried = so_far.tried;
        let (asked, happened, tried_now) = match status {
            Status::Done => {
                let (help, rewritten) = read_pick(output);
                let asked = rewritten.unwrap_or(so_far.asked);
                if let Err(why) = self.routable(state, &route, &help) {
                    self.answer_pick(state, conversation, call.as_ref(), ToolResult::error(why), Vec::new())?;
                    return Ok(None);
                }
                let (outcome, thread) = match self.run_for_route(state, &help, &asked).await? {
                    Ok(ran) => ran,
                    Err(why) => {
                        self.answer_pick(state, conversation, call.as_ref(), ToolResult::error(why), Vec::new())?;
                        return Ok(None);
                    }
                };
                let now = Tried { help: help.clone(), thread };
                if outcome.status != Status::Nocando {
                    // The help met the request (or asked, or failed): its ending is the router's.
                    let mut facts = round_facts(round, Some(&now));
                    if outcome.status == Status::Pending {
                        facts.push((fact::SUBTHREAD_ASKS.to_owned(), outcome.commit.to_string()));
                    }
                    state.ending.facts = facts;
                    let call_id = call.map(|call| call.id);
                    if let Some(id) = &call_id {
                        conversation.push(finish_result(id.clone(), outcome.status.as_str(), &outcome.output));
                    }
                    return self.finish(state, outcome.status, &outcome.output, outcome.confidence, call_id).map(Some);
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
        let (advice, finder) = match self.run_for_route(state, route.stuck_finder(), &question).await? {
            Ok((outcome, thread)) => (Advice::read(&outcome), Some(thread)),
            Err(why) => (Advice::give_up(format!("{happened} (and the stuck-finder could not run: {why})")), None),
        };
        let mut facts = round_facts(round, tried_now.as_ref());
        if let Some(finder) = &finder {
            facts.push((fact::STUCK_FINDER.to_owned(), finder.clone()));
        }
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
            Action::Author => match self.propose_help(state, &route, &advice, &asked).await? {
                Ok(proposed) => Some(proposed),
                Err(why) => {
                    missing.push_str(&format!(" (a help for it could not be proposed: {why})"));
                    None
                }
            },
            _ => None,
        };
        let ended = match (&proposed, advice.action) {
            (Some(_), _) => Ended::Proposed,
            (None, Action::GiveUp | Action::Author) => Ended::GaveUp,
            (None, _) => Ended::OutOfRounds,
        };
        let path = Stuck::path(&state.thread.id, round);
        let mut text = format!("No help here meets this request: {}", missing.trim());
        match (&proposed, ended) {
            (Some(proposed), _) => text.push_str(&format!(
                "\nA help `{}` that would is proposed on thread {} (its author ended {}): merge that thread to add it, \
                 then ask again.",
                proposed.help, proposed.thread, proposed.status
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

    /// Why the router may not run `help` for a request, if it may not.
    fn routable(&self, state: &RunState<'_>, route: &Route, help: &str) -> Result<(), String> {
        if help.is_empty() {
            return Err("name the help to run (its name alone, or {\"help\": <name>, \"request\": <text>}), or \
                        finish NOCANDO"
                .to_owned());
        }
        let Some(spec) = self.catalog.entry(help).and_then(|entry| entry.spec.as_ref()) else {
            return Err(format!("there is no help `{help}` here: pick one of the catalogue, or finish NOCANDO"));
        };
        if help == state.prepared.entry.name || spec.route.is_some() {
            return Err(format!("`{help}` is a router: pick the help that does the job"));
        }
        if help == route.stuck_finder() {
            return Err(format!("`{help}` is the stuck-finder, not a help for requests: pick another"));
        }
        Ok(())
    }

    /// Run `help` with `input` on a new sub-thread of the router's, as a part of its run: its outcome and thread,
    /// or why it could not start (nothing written then).
    async fn run_for_route(
        &self,
        state: &mut RunState<'_>,
        help: &str,
        input: &str,
    ) -> Result<Result<(Outcome, String), String>, RunError> {
        let limits = state.prepared.limits;
        if state.depth + 1 > limits.max_depth {
            return Ok(Err(format!(
                "helps may call helps only {} deep (limits.max_depth in hal.yaml)",
                limits.max_depth
            )));
        }
        if std::time::Instant::now() >= state.deadline {
            return Ok(Err("not started: the run is out of time".to_owned()));
        }
        let models = state.models.subrun();
        let prepared = match self.prepare(models.as_ref(), help) {
            Ok(prepared) => prepared,
            Err(error) => return Ok(Err(error.to_string())),
        };
        let title = format!("{help}: {}", first_line(input));
        let from = format!("thread {}", state.thread.id);
        let sub = self.journal.with(|home| home.start_thread_at(&state.actor, state.tip, Some(&title), &from, None))?;
        let id = sub.id.clone();
        let outcome = self.sub_run(state, &prepared, models, sub, input).await?;
        Ok(Ok((outcome, id)))
    }

    /// Run the route's author on the help the stuck-finder proposed: the thread it wrote it on.
    async fn propose_help(
        &self,
        state: &mut RunState<'_>,
        route: &Route,
        advice: &Advice,
        asked: &str,
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
        let description = advice.description.as_deref().unwrap_or(&advice.missing);
        let input = format!(
            "Write a help named `{name}` (helps/{name}.yaml): {description}\n\nIt is for requests like this one, which \
             no help here meets: {asked}"
        );
        Ok(match self.run_for_route(state, route.author(), &input).await? {
            Ok((outcome, thread)) => Ok(Proposed { help: name.clone(), thread, status: outcome.status.to_string() }),
            Err(why) => Err(why),
        })
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
    fn so_far(&self, state: &RunState<'_>) -> Result<SoFar, RunError> {
        let home = self.journal.handle();
        let here = ThreadRef { tip: state.tip, ..state.thread.clone() };
        let mut so_far = SoFar { asked: String::new(), rounds: 0, tried: Vec::new() };
        for step in home.steps_back(&here).take(LOOK_BACK) {
            let step = step?;
            let is_request = Some(step.commit) == state.request
                || (step.kind == StepKind::Message && (step.actor != HAL_ACTOR || step.fact(fact::AGENT).is_some()))
                || step.kind == StepKind::Commit;
            if is_request {
                so_far.asked = step.text;
                break;
            }
            // Only rounds HAL wrote count: a pushed step cannot use up the rounds, nor add a help to the tried.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pick_is_a_name_or_an_object() {
        assert_eq!(read_pick("summary"), ("summary".to_owned(), None));
        assert_eq!(read_pick("`summary`.\nIt fits best."), ("summary".to_owned(), None));
        assert_eq!(
            read_pick(r#"{"help": "summary", "request": "Summarise the notes"}"#),
            ("summary".to_owned(), Some("Summarise the notes".to_owned()))
        );
        assert_eq!(read_pick(r#"{"request": "x"}"#).0, "");
    }

    fn ended(status: Status, output: &str) -> Outcome {
        Outcome {
            status,
            output: output.to_owned(),
            thread: String::new(),
            commit: ObjectId::null(gix::hash::Kind::Sha1),
            turns: 1,
            usage: Default::default(),
            confidence: None,
            waiting: None,
        }
    }

    #[test]
    fn advice_is_a_json_object_in_a_done_answer_or_giving_up() {
        let advice = Advice::read(&ended(
            Status::Done,
            "```json\n{\"missing\": \"a translator\", \"action\": \"rewrite\", \"request\": \"Translate it\"}\n```",
        ));
        assert_eq!((advice.action, advice.request.as_deref()), (Action::Rewrite, Some("Translate it")));
        let advice = Advice::read(&ended(Status::Done, "{\"missing\": \"x\", \"action\": \"launch\"}"));
        assert_eq!(advice.action, Action::GiveUp, "an unknown action gives up");
        assert!(advice.missing.contains("gave no advice"), "{}", advice.missing);
        let advice = Advice::read(&ended(Status::Error, "{\"missing\": \"x\", \"action\": \"pick\"}"));
        assert_eq!(advice.action, Action::GiveUp, "only a DONE answer is advice");
    }
}
