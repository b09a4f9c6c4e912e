//! A thread's conversation as model messages, rebuilt from its steps, and the window of it sent to the model.
//!
//! Only the newest steps that fit the model's context are read: a long thread costs no more per turn than a
//! short one once the window is full.

use hal_model::Message;
use hal_store::{Home, Step, StepKind, ThreadRef};

use crate::error::RunError;
use crate::record::{FinishData, ReplyData, ToolData, fact};

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
}

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
        Conversation { messages: std::collections::VecDeque::new(), total: 0, budget, truncated: false }
    }

    /// The conversation of `thread`, newest steps first until the window is full.
    pub fn load(home: &Home, thread: &ThreadRef, context_tokens: u64) -> Result<Conversation, RunError> {
        let mut conversation = Conversation::new(context_tokens);
        let mut newest_first = Vec::new();
        let mut used = 0;
        for step in home.steps_back(thread) {
            let step = step?;
            let messages = messages_of(&step)?;
            used += messages.iter().map(size_of).sum::<usize>();
            newest_first.extend(messages.into_iter().rev());
            if used > conversation.budget {
                conversation.truncated = true;
                break;
            }
        }
        for message in in_call_order(newest_first.into_iter().rev().collect()) {
            conversation.push(message);
        }
        Ok(conversation)
    }

    /// Add a message at the end. Messages far outside the window are forgotten, so memory stays bounded
    /// however long the thread grows.
    pub fn push(&mut self, message: Message) {
        let message = shortened(message, self.budget / 2);
        let size = size_of(&message);
        self.total += size;
        self.messages.push_back((message, size));
        if self.total > self.budget.saturating_mul(2) {
            while self.total > self.budget && self.messages.len() > 1 {
                if let Some((_, size)) = self.messages.pop_front() {
                    self.total -= size;
                    self.truncated = true;
                }
            }
        }
    }

    /// The newest messages that fit the budget, starting at a message a model accepts first (not a tool result),
    /// after a note when older ones are left out.
    pub fn window(&self) -> Vec<Message> {
        let mut used = 0;
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
        let mut window = Vec::with_capacity(self.messages.len() - start + 1);
        if start > 0 || self.truncated {
            window.push(Message::User { text: LEFT_OUT.to_owned() });
        }
        window.extend(self.messages.range(start..).map(|(message, _)| message.clone()));
        window
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
    let mut waiting: Vec<String> = Vec::new();
    let mut deferred = Vec::new();
    for message in messages {
        match &message {
            Message::Assistant { tool_calls, .. } => {
                ordered.append(&mut deferred);
                waiting = tool_calls.iter().map(|call| call.id.clone()).collect();
                ordered.push(message);
            }
            Message::Tool { call_id, .. } => {
                waiting.retain(|id| id != call_id);
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

/// `message` with its text cut to about `max` bytes (at a character boundary), saying how much was left out, so
/// that one huge tool result or message never pushes everything else out of the window.
fn shortened(message: Message, max: usize) -> Message {
    let cut = |text: String| -> String {
        if text.len() <= max {
            return text;
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}\n[… {} more bytes left out to fit the model's context]", &text[..end], text.len() - end)
    };
    match message {
        Message::User { text } => Message::User { text: cut(text) },
        Message::Assistant { text, tool_calls } => Message::Assistant { text: cut(text), tool_calls },
        Message::Tool { call_id, name, content, is_error } => {
            Message::Tool { call_id, name, content: cut(content), is_error }
        }
    }
}

/// Whether `step` was written by a person: a `message` step by someone other than HAL that is not a run's own
/// request (those are `running`), or a plain git commit.
pub fn is_persons_step(step: &Step) -> bool {
    let message = StepKind::parse_name(&step.kind) == StepKind::Message
        && step.actor != hal_store::identity::HAL_ACTOR
        && step.status != Some(hal_store::ThreadStatus::Running);
    message || step.step.is_none()
}

/// The messages one step contributes to the conversation, in order.
pub fn messages_of(step: &Step) -> Result<Vec<Message>, RunError> {
    let bad = |reason: String| RunError::BadRecord { commit: step.commit.to_string(), reason };
    let data = || step.data.as_deref().ok_or_else(|| bad(format!("a {} step has no hal-data", step.kind)));
    let kind = StepKind::parse_name(&step.kind);
    Ok(match kind {
        StepKind::Message => vec![Message::User { text: step.text.clone() }],
        StepKind::Reply => {
            let data: ReplyData = serde_json::from_str(data()?).map_err(|e| bad(e.to_string()))?;
            vec![data.reply.to_message()]
        }
        StepKind::Tool => {
            let data: ToolData = serde_json::from_str(data()?).map_err(|e| bad(e.to_string()))?;
            vec![Message::Tool {
                call_id: data.call.id,
                name: data.call.name,
                content: step.text.clone(),
                is_error: step.fact(fact::OUTCOME) == Some("error"),
            }]
        }
        StepKind::Finish => {
            let data: FinishData = step
                .data
                .as_deref()
                .map_or(Ok(FinishData::default()), |d| serde_json::from_str(d).map_err(|e| bad(e.to_string())))?;
            match data.call_id {
                Some(call_id) => vec![finish_result(call_id, step.fact(fact::RESULT).unwrap_or("?"), &step.text)],
                None => Vec::new(),
            }
        }
        StepKind::System => vec![Message::User { text: format!("[a note from the HAL runtime] {}", step.text) }],
        // A plain git commit on a thread is a person's message: its commit message is the text.
        _ if step.step.is_none() && !step.text.trim().is_empty() => {
            vec![Message::User { text: step.text.trim().to_owned() }]
        }
        _ => Vec::new(),
    })
}

/// The tool result that answers the `finish` call which ended a run, so a resumed conversation is complete.
pub fn finish_result(call_id: String, status: &str, output: &str) -> Message {
    Message::Tool {
        call_id,
        name: crate::run::FINISH.to_owned(),
        content: format!("The run ended with status {status}. Output: {output}"),
        is_error: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Message {
        Message::User { text: text.into() }
    }

    #[test]
    fn the_window_keeps_the_newest_messages_and_a_tool_result_keeps_its_call() {
        let call = Message::Assistant {
            text: String::new(),
            tool_calls: vec![hal_model::ToolCall { id: "1".into(), name: "t".into(), arguments: "{}".into() }],
        };
        let result = Message::Tool { call_id: "1".into(), name: "t".into(), content: "x".repeat(20), is_error: false };
        let fill = |conversation: &mut Conversation| {
            conversation.push(user(&"a".repeat(60)));
            conversation.push(call.clone());
            conversation.push(result.clone());
            conversation.push(user("b"));
        };
        let mut tight = Conversation::new(0);
        tight.budget = 110;
        fill(&mut tight);
        assert_eq!(tight.window(), vec![user(LEFT_OUT), call.clone(), result.clone(), user("b")]);
        let mut roomy = Conversation::new(0);
        fill(&mut roomy);
        assert_eq!(roomy.window().len(), 4, "everything fits, no note");
    }

    #[test]
    fn a_note_between_a_call_and_its_result_moves_after_the_result() {
        let call = Message::Assistant {
            text: String::new(),
            tool_calls: vec![hal_model::ToolCall { id: "1".into(), name: "t".into(), arguments: "{}".into() }],
        };
        let result = Message::Tool { call_id: "1".into(), name: "t".into(), content: "x".into(), is_error: false };
        let ordered = in_call_order(vec![user("a"), call.clone(), user("note"), result.clone(), user("b")]);
        assert_eq!(ordered, vec![user("a"), call, result, user("note"), user("b")]);
    }

    #[test]
    fn a_huge_message_is_shortened_so_the_request_keeps_its_context() {
        let mut conversation = Conversation::new(0);
        conversation.budget = 200;
        conversation.push(user("the task"));
        conversation.push(Message::Tool {
            call_id: "1".into(),
            name: "t".into(),
            content: "é".repeat(500),
            is_error: false,
        });
        let window = conversation.window();
        assert_eq!(window[0], user("the task"), "the task is still there: {window:?}");
        let Message::Tool { content, .. } = &window[1] else { panic!("a tool result: {window:?}") };
        assert!(content.len() < 200 && content.contains("more bytes left out"), "{content}");
    }
}
