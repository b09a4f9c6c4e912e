//! Every default a schema documents (`"default"` in `schemas/*.schema.json`) is the code's: each is checked against
//! the constant the code uses, and a default the table below does not check fails the test, so the schemas (what
//! editors and people read) and the code cannot drift apart.

use serde_json::{Value, json};

/// Every `default` in `schema`, by JSON pointer of the field.
fn defaults(schema: &Value, at: &str, found: &mut Vec<(String, Value)>) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object {
                let here = format!("{at}/{key}");
                if key == "default" && !value.is_object() {
                    found.push((at.to_owned(), value.clone()));
                } else {
                    defaults(value, &here, found);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                defaults(item, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn every_documented_default_is_the_codes() {
    let run = hal_runner::run::DEFAULT_LIMITS;
    let reply = hal_model::ReplyLimits::default();
    let kib = |bytes: usize| json!(bytes / 1024);
    let isolate = hal_sandbox::DEFAULT_ISOLATE_LIMITS;
    let sandbox = |prefix: &str| {
        vec![
            (format!("{prefix}/wall_ms"), json!(isolate.wall_ms)),
            (format!("{prefix}/fuel"), json!(isolate.fuel)),
            (format!("{prefix}/memory_mb"), json!(isolate.memory_mb)),
            (format!("{prefix}/output_kb"), json!(isolate.output_kb)),
            (format!("{prefix}/stack_kb"), json!(isolate.stack_kb)),
            (format!("{prefix}/files"), json!(isolate.files)),
        ]
    };
    let limits = "/properties/limits/properties";
    let mut settings = vec![
        (format!("{limits}/max_steps"), json!(run.max_steps)),
        (format!("{limits}/max_tokens"), json!(run.max_tokens)),
        (format!("{limits}/max_seconds"), json!(run.max_seconds)),
        (format!("{limits}/max_depth"), json!(run.max_depth)),
        (format!("{limits}/max_starts"), json!(run.max_starts)),
        (format!("{limits}/idle_seconds"), json!(reply.idle.as_secs())),
        (format!("{limits}/reply/properties/text_kb"), kib(reply.text_bytes)),
        (format!("{limits}/reply/properties/line_kb"), kib(reply.line_bytes)),
        (format!("{limits}/reply/properties/raw_kb"), kib(reply.raw_bytes)),
        (format!("{limits}/reply/properties/tool_calls"), json!(reply.tool_calls)),
        (format!("{limits}/reply/properties/arguments_kb"), kib(reply.arguments_bytes)),
        ("/properties/rate_limits/properties/wait_seconds".to_owned(), json!(hal_spec::rate::DEFAULT_WAIT_SECONDS)),
        (
            "/properties/models/additionalProperties/properties/context_tokens".to_owned(),
            json!(hal_runner::model::DEFAULT_CONTEXT_TOKENS),
        ),
    ];
    settings.extend(sandbox("/$defs/limits/properties"));
    let route = hal_spec::Route::default();
    let help = vec![
        ("/properties/route/properties/stuck_finder".to_owned(), json!(route.stuck_finder())),
        ("/properties/route/properties/author".to_owned(), json!(route.author())),
        ("/properties/route/properties/rounds".to_owned(), json!(route.rounds())),
    ];
    let schemas = [
        ("hal.schema.json", hal_spec::SETTINGS_SCHEMA, settings),
        ("help.schema.json", hal_spec::HELP_SCHEMA, help),
        ("isolate.schema.json", hal_spec::ISOLATE_SCHEMA, sandbox("/$defs/limits/properties")),
        // A plugin's manifest cannot raise how many files one call writes.
        ("plugin.schema.json", hal_spec::PLUGIN_SCHEMA, {
            let mut limits = sandbox("/$defs/limits/properties");
            limits.retain(|(at, _)| !at.ends_with("/files"));
            limits
        }),
    ];
    for (file, text, code) in schemas {
        let schema: Value = serde_json::from_str(text).expect("a schema is JSON");
        let mut documented = Vec::new();
        defaults(&schema, "", &mut documented);
        for (pointer, value) in &documented {
            let Some((_, expected)) = code.iter().find(|(at, _)| at == pointer) else {
                panic!("{file}: the default of {pointer} is checked against no constant of the code: add it here");
            };
            // Numbers compare as numbers: 600 in the schema is the code's 600.0.
            let same = match (value.as_f64(), expected.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => value == expected,
            };
            assert!(same, "{file}: {pointer} documents {value}, the code's default is {expected}");
        }
        for (pointer, _) in &code {
            assert!(documented.iter().any(|(at, _)| at == pointer), "{file}: {pointer} documents no default");
        }
    }
}
