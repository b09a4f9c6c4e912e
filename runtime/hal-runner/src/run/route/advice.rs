//! What a router reads from models: the help its own model names (a pick), and the stuck-finder's advice.

use serde::Deserialize;
use serde_json::Value;

use super::super::{Outcome, first_line};
use crate::status::Status;

/// What the stuck-finder says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Action {
    Rewrite,
    Pick,
    Author,
    GiveUp,
}

/// The stuck-finder's answer.
#[derive(Debug, Deserialize)]
pub(super) struct Advice {
    pub(super) missing: String,
    pub(super) action: Action,
    #[serde(default)]
    pub(super) request: Option<String>,
    #[serde(default)]
    pub(super) help: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
}

impl Advice {
    /// The advice in a stuck-finder's ending: a JSON object, maybe inside other text. Anything else gives up, with
    /// what it said.
    pub(super) fn read(outcome: &Outcome) -> Advice {
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

    pub(super) fn give_up(missing: String) -> Advice {
        Advice { missing, action: Action::GiveUp, request: None, help: None, description: None }
    }

    pub(super) fn action(&self) -> &'static str {
        match self.action {
            Action::Rewrite => "rewrite",
            Action::Pick => "pick",
            Action::Author => "author",
            Action::GiveUp => "give-up",
        }
    }
}

/// The help a router's answer names, and the request rewritten, when it was.
pub(super) fn read_pick(output: &str) -> (String, Option<String>) {
    let text = output.trim();
    if let Ok(Value::Object(pick)) = serde_json::from_str::<Value>(text) {
        let field = |key: &str| pick.get(key).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
        return (field("help").unwrap_or_default().to_owned(), field("request").map(str::to_owned));
    }
    // A name, maybe quoted or with a full stop, as models answer.
    let name = first_line(text).trim_matches(|c: char| c == '`' || c == '"' || c == '\'' || c == '.' || c == ' ');
    (name.to_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gix::ObjectId;

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
            routed: None,
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
