//! The conversation's window, order of calls and results, and shortening.

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
fn a_result_pushed_after_a_note_goes_before_it() {
    let call = Message::Assistant {
        text: String::new(),
        tool_calls: vec![hal_model::ToolCall { id: "1".into(), name: "t".into(), arguments: "{}".into() }],
    };
    let result = Message::Tool { call_id: "1".into(), name: "t".into(), content: "x".into(), is_error: false };
    let mut conversation = Conversation::new(0);
    for message in [user("a"), call.clone(), user("note"), result.clone()] {
        conversation.push(message);
    }
    assert_eq!(conversation.window(), vec![user("a"), call, result, user("note")]);
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
