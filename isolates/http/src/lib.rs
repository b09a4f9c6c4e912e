//! The `http` isolate: fetch a URL on the allow-list.

wit_bindgen::generate!({ world: "isolate", path: "../../schemas/wit" });

use hal::isolate::http;
use serde_json::{Value, json};

/// Longest body returned, in characters.
const MAX_BODY: usize = 100 * 1024;

struct Http;

impl Guest for Http {
    fn describe() -> Vec<FunctionSpec> {
        vec![FunctionSpec {
            name: "fetch".to_owned(),
            description: "Fetch a URL (GET, or POST with a body) and return its status and text. Only hosts allowed in hal.yaml can be reached.".to_owned(),
            parameters: json!({"type": "object", "required": ["url"], "additionalProperties": false,
                "properties": {"url": {"type": "string"}, "method": {"enum": ["GET", "POST"]}, "body": {"type": "string"}}})
            .to_string(),
        }]
    }

    fn call(function: String, arguments: String) -> Result<String, String> {
        if function != "fetch" {
            return Err(format!("http has no function `{function}`"));
        }
        let arguments: Value = serde_json::from_str(&arguments).map_err(|e| format!("arguments: {e}"))?;
        let url = arguments.get("url").and_then(Value::as_str).unwrap_or_default();
        let method = arguments.get("method").and_then(Value::as_str).unwrap_or("GET");
        let body = arguments.get("body").and_then(Value::as_str).map(str::to_owned);
        let response = http::fetch(method, url, body.as_deref())?;
        let mut text: String = response.body.chars().take(MAX_BODY).collect();
        if text.len() < response.body.len() {
            text.push_str("\n[… truncated]");
        }
        Ok(json!({"status": response.status, "body": text}).to_string())
    }
}

export!(Http);
