//! A thread's conversation as model messages, rebuilt from its steps, and the window of it sent to the model.
//!
//! Only the newest steps that fit the model's context are read: a long thread costs no more per turn than a
//! short one once the window is full. The request a run answers is pinned: however many steps the run adds after
//! it, the window always carries it.
//!
//! What HAL does not believe is left out, with a note in its place: a step only HAL writes (a reply, a tool
//! result, a note, whatever actor it names) that no key of HAL's signed (a pushed "reply" would otherwise put
//! words in the model's mouth, a pushed "tool" step fake a result), and a person's step HAL does not answer
//! (unsigned where `trust.unsigned_messages` says to ignore those, or signed wrongly), as
//! [`crate::plan::refusal`] judges one at the tip.

use hal_model::Message;
use hal_store::{Home, Step, StepKind, ThreadRef};

use crate::error::RunError;
use crate::plan::Admit;
use crate::record::{FinishData, ReplyData, StepData, ToolData, fact};

/// Characters per token assumed when fitting messages into a context window (conservative for English).
const CHARS_PER_TOKEN: u64 = 3;
/// Room kept for the system prompt, the tool schemas and the reply, in tokens.
const RESERVED_TOKENS: u64 = 8_000;

/// The note that opens a window that leaves out older messages.
pub const LEFT_OUT: &str = "[Earlier steps of this thread are left out to fit the model's context.]";

/// The messages of a conversation with their sizes, and how many characters a request may carry.
#[derive(Debug, Clone)]
pub struct Conversation {
    messages: std::collections::VecDeque<(Message, usize)>,
    /// Sum of the sizes of `messages`.
    total: usize,
    budget: usize,
    /// Older messages exist that were never loaded.
    truncated: bool,
    /// Messages forgotten from the front so far: `popped + i` is the position of `messages[i]` in the thread.
    popped: usize,
    /// The request the current run answers, and its position when it is (or was) among `messages` (`None`: it is
    /// older than anything loaded).
    pinned: Option<(Option<usize>, Message)>,
}

/// How many steps before the window [`Conversation::load`] reads back to find the run's request.
const REQUEST_LOOK_BACK: usize = 1000;

/// Characters a message costs in the window.
fn size_of(message: &Message) -> usize {
    match message {
        Message::User { text } => text.len() + 16,
        Message::Assistant { text, tool_calls } => {
            text.len()
                + tool_calls.iter().map(|c| c.name.len() + c.arguments.len() + c.id.len() + 32).sum::<usize>()
                + 16
        }
        Message::Tool { call_id, name, content, .. } => call_id.len() + name.len() + content.len() + 32,
    }
}

impl Conversation {
    /// An empty conversation for a model with `context_tokens`.
    pub fn new(context_tokens: u64) -> Conversation {
        let tokens = context_tokens.saturating_sub(RESERVED_TOKENS).max(1_000);
        let budget = usize::try_from(tokens.saturating_mul(CHARS_PER_TOKEN)).unwrap_or(usize::MAX);
        Conversation {
            messages: std::collections::VecDeque::new(),
            total: 0,
            budget,
            truncated: false,
            popped: 0,
            pinned: None,
        }
    }

    /// The conversation of `thread`, newest steps first until the window is full; `admit` says which people's
    /// steps HAL answers.
    pub fn load(home: &Home, thread: &ThreadRef, context_tokens: u64, admit: Admit) -> Result<Conversation, RunError> {
        let mut conversation = Conversation::new(context_tokens);
        let mut newest_first = Vec::new();
        let mut used = 0;
        let mut request = None;
        let mut keyring = None;
        let mut steps = home.steps_back(thread);
        for step in steps.by_ref() {
            let step = step?;
            if let Some(reason) = left_out(home, &thread.branch, &step, &admit, &mut keyring)? {
                // The results HAL recorded for a left-out reply's calls answer calls the model never sees.
                if let Some(calls) = left_out_calls(&step) {
                    drop_results(&mut newest_first, &calls);
                }
                let note = Message::User { text: format!("[a note from the HAL runtime] {reason}") };
                used += size_of(&note);
                newest_first.push(note);
                // Notes count against the window like any message: a thread full of them is not read whole.
                if used > conversation.budget {
                    conversation.truncated = true;
                    break;
                }
                continue;
            }
            let messages = messages_of(&step)?;
            if request.is_none() && is_request(&step) {
                request = messages.first().cloned();
            }
            used += messages.iter().map(size_of).sum::<usize>();
            newest_first.extend(messages.into_iter().rev());
            if used > conversation.budget {
                conversation.truncated = true;
                break;
            }
        }
        // A run that made many steps may have pushed its request out of the window: look for it further back.
        let mut older_request = None;
        if request.is_none() && conversation.truncated {
            // Best effort: a step past the window that cannot be read ends the search, not the run.
            for step in steps.take(REQUEST_LOOK_BACK) {
                let Ok(step) = step else { break };
                if is_request(&step) {
                    older_request = messages_of(&step).ok().and_then(|messages| messages.into_iter().next());
                    break;
                }
            }
        }
        for message in in_call_order(newest_first.into_iter().rev().collect()) {
            conversation.push(message);
        }
        if let Some(request) = request {
            let request = shortened(request, conversation.budget / 2);
            let position = conversation.messages.iter().rposition(|(message, _)| *message == request);
            conversation.pinned = position.map(|at| (Some(conversation.popped + at), request));
        } else if let Some(request) = older_request {
            conversation.pinned = Some((None, shortened(request, conversation.budget / 2)));
        }
        Ok(conversation)
    }

    /// Mark the newest message as the request of the current run: the window always carries it.
    pub fn pin_last(&mut self) {
        let position = self.popped + self.messages.len();
        self.pinned = self.messages.back().map(|(message, _)| (position.checked_sub(1), message.clone()));
    }

    /// Add a message at the end. Messages far outside the window are forgotten, so memory stays bounded
    /// however long the thread grows.
    pub fn push(&mut self, message: Message) {
        let message = shortened(message, self.budget / 2);
        let size = size_of(&message);
        self.total += size;
        // A call's result goes right after its reply and the results before it: a note written while the call
        // waited (for an owner's approval, say) moves after it, as `in_call_order` does for what is read back.
        let mut at = self.messages.len();
        if matches!(message, Message::Tool { .. }) {
            while at > 0 && matches!(self.messages[at - 1].0, Message::User { .. }) {
                at -= 1;
            }
            let after_call =
                at > 0 && matches!(self.messages[at - 1].0, Message::Assistant { .. } | Message::Tool { .. });
            if !after_call {
                at = self.messages.len();
            }
        }
        if at < self.messages.len() {
            if let Some((Some(pinned), _)) = &mut self.pinned
                && *pinned >= self.popped + at
            {
                *pinned += 1;
            }
            self.messages.insert(at, (message, size));
        } else {
            self.messages.push_back((message, size));
        }
        if self.total > self.budget.saturating_mul(2) {
            while self.total > self.budget && self.messages.len() > 1 {
                if let Some((_, size)) = self.messages.pop_front() {
                    self.total -= size;
                    self.truncated = true;
                    self.popped += 1;
                }
            }
        }
    }

    /// The newest messages that fit the budget, starting at a message a model accepts first (not a tool result),
    /// after a note when older ones are left out and the run's request when it is older than the rest.
    pub fn window(&self) -> Vec<Message> {
        let mut used = self.pinned.as_ref().map_or(0, |(_, message)| size_of(message));
        let mut start = self.messages.len();
        while start > 0 {
            let size = self.messages[start - 1].1;
            if used + size > self.budget && start < self.messages.len() {
                break;
            }
            used += size;
            start -= 1;
        }
        // A tool result needs the call before it: reach back to the reply that made the call (over the budget if
        // need be); a result whose call was never loaded is dropped instead.
        while start > 0 && start < self.messages.len() && matches!(self.messages[start].0, Message::Tool { .. }) {
            start -= 1;
        }
        while start < self.messages.len() && matches!(self.messages[start].0, Message::Tool { .. }) {
            start += 1;
        }
        let mut window = Vec::with_capacity(self.messages.len() - start + 2);
        if start > 0 || self.truncated {
            window.push(Message::User { text: LEFT_OUT.to_owned() });
        }
        if let Some((position, request)) = &self.pinned
            && position.is_none_or(|at| at < self.popped + start)
        {
            window.push(request.clone());
        }
        window.extend(self.messages.range(start..).map(|(message, _)| message.clone()));
        window
    }

    /// Answer, as not run, the tool calls of the newest reply that have no result: a run that does not resume that
    /// reply (its tip is a person's message, or the reply was pushed by someone else) still sends the model a
    /// conversation it accepts, in which every call has its result.
    pub fn close_open_calls(&mut self) {
        let Some(at) = self.messages.iter().rposition(
            |(message, _)| matches!(message, Message::Assistant { tool_calls, .. } if !tool_calls.is_empty()),
        ) else {
            return;
        };
        let mut insert_at = at + 1;
        let mut answered = Vec::new();
        while let Some((Message::Tool { call_id, .. }, _)) = self.messages.get(insert_at) {
            answered.push(call_id.clone());
            insert_at += 1;
        }
        let Message::Assistant { tool_calls, .. } = &self.messages[at].0 else { return };
        let open: Vec<Message> = tool_calls.iter().filter(|call| !answered.contains(&call.id)).map(not_run).collect();
        if let Some((Some(position), _)) = &mut self.pinned
            && *position >= self.popped + insert_at
        {
            *position += open.len();
        }
        for message in open {
            let size = size_of(&message);
            self.total += size;
            self.messages.insert(insert_at, (message, size));
            insert_at += 1;
        }
    }

    /// How many messages it holds.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// `messages` with any user text that sits between a reply's tool calls and their results (a note or a message
/// committed while the run was between the two) moved after the results: models accept a call's results only
/// right after the call.
fn in_call_order(messages: Vec<Message>) -> Vec<Message> {
    let mut ordered = Vec::with_capacity(messages.len());
    let mut waiting: Vec<hal_model::ToolCall> = Vec::new();
    let mut deferred = Vec::new();
    for message in messages {
        match &message {
            Message::Assistant { tool_calls, .. } => {
                // Calls of an earlier reply that never got a result (a run cut off, a reply pushed by someone
                // else) are answered as not run: models accept a call only with its result right after it.
                ordered.extend(waiting.drain(..).map(|call| not_run(&call)));
                ordered.append(&mut deferred);
                waiting = tool_calls.clone();
                ordered.push(message);
            }
            Message::Tool { call_id, .. } => {
                waiting.retain(|call| call.id != *call_id);
                ordered.push(message);
                if waiting.is_empty() {
                    ordered.append(&mut deferred);
                }
            }
            Message::User { .. } if !waiting.is_empty() => deferred.push(message),
            Message::User { .. } => ordered.push(message),
        }
    }
    ordered.append(&mut deferred);
    ordered
}

/// The result of a call that was never run.
fn not_run(call: &hal_model::ToolCall) -> Message {
    Message::Tool {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: "not run: no result was recorded for this call".to_owned(),
        is_error: true,
    }
}

/// `message` with its text cut to about `max` bytes (at a character boundary), saying how much was left out, so
/// that one huge tool result or message never pushes everything else out of the window.
fn shortened(message: Message, max: usize) -> Message {
    let cut = |text: String| -> String {
        match text.len() <= max {
            true => text,
            false => hal_store::files::clip(&text, max, " left out to fit the model's context"),
        }
    };
    match message {
        Message::User { text } => Message::User { text: cut(text) },
        Message::Assistant { text, tool_calls } => Message::Assistant { text: cut(text), tool_calls },
        Message::Tool { call_id, name, content, is_error } => {
            Message::Tool { call_id, name, content: cut(content), is_error }
        }
    }
}

/// Why `step` of `branch` is left out of the conversation, if it is: steps this HAL wrote there are kept; a step
/// that claims to be HAL's needs a key of HAL's; a person's step must be one HAL answers. `keyring` is loaded
/// at the first step that needs it.
fn left_out(
    home: &Home,
    branch: &str,
    step: &Step,
    admit: &Admit,
    keyring: &mut Option<hal_trust::Keyring>,
) -> Result<Option<String>, RunError> {
    if home.wrote_on(step.commit, branch)? {
        return Ok(None);
    }
    // A person's step is a plain commit or a message in a person's name (or relayed for one); every other step
    // (a reply, a tool result, a note, HAL's own message) is HAL's to write, whatever actor it names.
    let persons = step.number.is_none() || is_persons_message(step);
    let keyring = match keyring {
        Some(keyring) => keyring,
        None => keyring.insert(hal_trust::Keyring::load(home).map_err(RunError::from_trust)?),
    };
    if !persons {
        let verdict = keyring.verdict(home, step).map_err(RunError::from_trust)?;
        return Ok((!(verdict.is_hals() || verdict == hal_trust::Verdict::ByHal)).then(|| {
            format!(
                "step {} is left out: only HAL writes a {} step, and it is {}.",
                step.commit,
                step.kind,
                verdict.label()
            )
        }));
    }
    Ok(crate::plan::refusal_with(home, keyring, branch, step, admit)?
        .map(|reason| format!("step {} is left out. {reason}", step.commit)))
}

/// The ids of the tool calls of a left-out `step`, when it is a reply that holds some.
fn left_out_calls(step: &Step) -> Option<Vec<String>> {
    let reply = ReplyData::of(step).ok().flatten()?.reply;
    (!reply.tool_calls.is_empty()).then(|| reply.tool_calls.into_iter().map(|call| call.id).collect())
}

/// Remove from `newest_first` (the messages newer than a left-out reply, newest first) the results of its
/// `calls`, up to the next reply.
fn drop_results(newest_first: &mut Vec<Message>, calls: &[String]) {
    let newer = newest_first.iter().rposition(|m| matches!(m, Message::Assistant { .. })).map_or(0, |at| at + 1);
    let mut index = newer;
    while index < newest_first.len() {
        match &newest_first[index] {
            Message::Tool { call_id, .. } if calls.contains(call_id) => {
                newest_first.remove(index);
            }
            _ => index += 1,
        }
    }
}

/// Whether `step` was written by a person: a `message` step by someone other than HAL (or relayed by HAL for a
/// person, `Hal-For`) that is not a run's own request (those are `running`), or a plain git commit.
pub fn is_persons_step(step: &Step) -> bool {
    let message = is_persons_message(step) && step.status != Some(hal_store::ThreadStatus::Running);
    message || step.number.is_none()
}

/// Whether `step` is a `message` step in a person's name: written by someone other than HAL, or relayed by HAL for
/// a person (`Hal-For`). HAL's own notes to the model are not.
pub fn is_persons_message(step: &Step) -> bool {
    step.kind == StepKind::Message && (step.actor != hal_store::identity::HAL_ACTOR || step.fact(fact::FOR).is_some())
}

/// Whether `step` asks for a run: a `message` by a person (a run's own request included), a message HAL relayed
/// for a person, or a plain git commit with text. HAL's notes to the model are not requests.
fn is_request(step: &Step) -> bool {
    is_persons_message(step) || (step.number.is_none() && !step.text.trim().is_empty())
}

/// The text a model is given for a person's message or request: as written, or, for a message HAL relayed from a
/// run (`Hal-For`), marked as such, so the receiving run never takes a model's words for the person's.
pub fn request_text(step: &Step) -> String {
    match step.fact(fact::FOR) {
        Some(person) if step.actor == hal_store::identity::HAL_ACTOR => relayed(person, &step.text),
        _ if step.number.is_none() => step.text.trim().to_owned(),
        _ => step.text.clone(),
    }
}

/// How a model is shown `text` that HAL relayed for `person` (another run's words, not theirs).
pub fn relayed(person: &str, text: &str) -> String {
    format!("[relayed by HAL for {person}, not written by them] {text}")
}

/// The messages one step contributes to the conversation, in order.
pub fn messages_of(step: &Step) -> Result<Vec<Message>, RunError> {
    let kind = step.kind.clone();
    Ok(match kind {
        StepKind::Message => vec![Message::User { text: request_text(step) }],
        StepKind::Reply => {
            vec![ReplyData::required(step)?.reply.to_message()]
        }
        // A tool step without the call it answers (written by `hal isolate call --thread` before it wrote `write`
        // steps, or pushed by hand) is shown as a note: a thread holding one stays runnable.
        StepKind::Tool if step.data.is_none() => {
            vec![Message::User { text: format!("[a tool step that records no call] {}", step.text) }]
        }
        StepKind::Tool => {
            // One tool step answers one call, or several refused calls of one reply with the same reason.
            let data = ToolData::required(step)?;
            let is_error = step.fact(fact::OUTCOME) == Some("error");
            std::iter::once(data.call)
                .chain(data.also)
                .map(|call| Message::Tool { call_id: call.id, name: call.name, content: step.text.clone(), is_error })
                .collect()
        }
        StepKind::Finish => {
            let data = FinishData::of(step)?.unwrap_or_default();
            match data.call_id {
                Some(call_id) => vec![finish_result(call_id, step.fact(fact::RESULT).unwrap_or("?"), &step.text)],
                None => Vec::new(),
            }
        }
        StepKind::System => vec![Message::User { text: format!("[a note from the HAL runtime] {}", step.text) }],
        // A plain git commit on a thread is a person's message: its commit message is the text.
        _ if step.number.is_none() && !step.text.trim().is_empty() => {
            vec![Message::User { text: step.text.trim().to_owned() }]
        }
        _ => Vec::new(),
    })
}

/// The tool result that answers the `finish` call which ended a run, so a resumed conversation is complete.
pub fn finish_result(call_id: String, status: &str, output: &str) -> Message {
    Message::Tool {
        call_id,
        name: crate::record::FINISH.to_owned(),
        content: format!("The run ended with status {status}. Output: {output}"),
        is_error: false,
    }
}

#[cfg(test)]
mod tests;
