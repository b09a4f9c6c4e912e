//! `hal.yaml`: the home repo's settings (models, task routing, run limits).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::isolate::{SandboxLimits, TreeAccess};
use crate::problem::SpecError;
use crate::validate::Schema;

/// The schema `hal.yaml` is validated against (`schemas/hal.schema.json`).
pub const SETTINGS_SCHEMA: &str = include_str!("../../../schemas/hal.schema.json");

/// The task class a help without `runner.model` or `runner.task` uses.
pub const DEFAULT_TASK: &str = "default";

/// A validated `hal.yaml`. The fields mirror `schemas/hal.schema.json`, which documents them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The format version.
    pub version: Option<u32>,
    /// Models by name.
    pub models: BTreeMap<String, ModelSettings>,
    /// Task classes routed to model names.
    pub tasks: BTreeMap<String, String>,
    /// Default limits of a run.
    pub limits: LimitSettings,
    /// The sandbox policy.
    pub sandbox: Sandbox,
    /// How Prometheus may scrape `/metrics`.
    pub metrics: MetricsSettings,
    /// Owners by actor name, with the public keys whose signatures count as theirs.
    pub owners: BTreeMap<String, Vec<String>>,
    /// The actors besides the owners HAL answers (everyone whose key counts when absent).
    pub members: Option<Vec<String>>,
    /// What HAL believes of steps it did not sign.
    pub trust: TrustSettings,
    /// How far HAL may act on its own, per tool and help.
    pub policy: crate::policy::Policy,
    /// What runs may spend.
    pub budgets: crate::budget::Budgets,
    /// How many tool calls an hour runs may make.
    pub rate_limits: crate::rate::RateLimits,
}

/// The `trust` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustSettings {
    /// Whether a person's unsigned plain-git message is answered (default: only while the repo has no remote).
    pub unsigned_messages: Option<UnsignedMessages>,
}

/// What to do with a person's unsigned plain-git message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnsignedMessages {
    /// Answer it.
    Accept,
    /// Leave it unanswered, with a system step saying why.
    Ignore,
}

/// The `metrics` section: how a scraper reaches the daemon's `/metrics` without the daemon's own token (which
/// changes at every start).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// The name of the secret whose value a scraper sends as a bearer token, good for `/metrics` only.
    pub token: Option<String>,
    /// A loopback address where `/metrics` is served without a token.
    pub listen: Option<String>,
}

impl MetricsSettings {
    /// The address of `listen`, when it is a loopback address (the settings check refuses any other).
    pub fn listen_address(&self) -> Option<std::net::SocketAddr> {
        let address: std::net::SocketAddr = self.listen.as_deref()?.parse().ok()?;
        address.ip().is_loopback().then_some(address)
    }
}

/// The `sandbox` section: default limits of an isolate call and what each isolate is granted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sandbox {
    /// Default limits.
    pub limits: SandboxLimits,
    /// Grants and limits by isolate name.
    pub isolates: BTreeMap<String, IsolatePolicy>,
}

/// What one isolate is granted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolatePolicy {
    /// Access to the working tree (when `None`, built-in isolates get what they ask for, others nothing).
    pub tree: Option<TreeAccess>,
    /// Hosts it may fetch from.
    pub http: Vec<String>,
    /// Secrets it may read.
    pub secrets: Vec<String>,
    /// Its limits.
    pub limits: SandboxLimits,
}

/// One entry of `models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// `openai` or `anthropic`.
    pub provider: String,
    /// Everything before `/chat/completions` or `/messages`.
    pub base_url: Option<String>,
    /// The model id sent to the server.
    pub model: String,
    /// The name of the secret holding the API key.
    pub key: Option<String>,
    /// Most tokens in one reply.
    pub max_output_tokens: Option<u32>,
    /// The model's context window, in tokens.
    pub context_tokens: Option<u64>,
    /// Its price, for budgets in dollars.
    #[serde(default)]
    pub price: Option<crate::budget::Price>,
}

/// The `limits` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Most model turns in one run.
    pub max_steps: Option<u32>,
    /// Most tokens in and out over one run.
    pub max_tokens: Option<u64>,
    /// Wall time of one run, in seconds.
    pub max_seconds: Option<f64>,
    /// How deep helps may call helps, and how long a chain of threads started by runs may grow.
    pub max_depth: Option<u32>,
    /// Most threads one run may start with `threads.start`.
    pub max_starts: Option<u32>,
    /// Longest silence of a model server while HAL waits for its answer or the next bytes of it, in seconds
    /// (default 60). Silence before any byte of the reply is retried like a broken connection; silence in the
    /// middle of a reply ends the run `ERROR`.
    pub idle_seconds: Option<f64>,
    /// How much of one model reply HAL reads.
    pub reply: ReplyLimits,
}

/// The `limits.reply` section: how much of one model reply HAL reads. A reply over one of these ends the run
/// `ERROR` with a reason naming the setting; the raw body is the exception (past `raw_kb` it is read but not
/// kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplyLimits {
    /// Longest text of one reply, in KiB (default 256).
    pub text_kb: Option<u64>,
    /// Longest line (and event) of a streamed reply, and longest body of a reply that is not streamed, in KiB
    /// (default 1024).
    pub line_kb: Option<u64>,
    /// Longest raw response body kept in the reply step's record, in KiB (default 256; 0 keeps none).
    pub raw_kb: Option<u64>,
    /// Most tool calls in one reply (default 64).
    pub tool_calls: Option<u64>,
    /// Most tool-call arguments in one reply, all calls together, in KiB (default 1024).
    pub arguments_kb: Option<u64>,
}

impl Settings {
    /// Parse and validate `hal.yaml`. `file` names it in errors. Task routes must name a model of `models`.
    pub fn parse(file: &str, text: &str) -> Result<Settings, SpecError> {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::new(SETTINGS_SCHEMA)).load_checked(file, text, |settings: &Settings| {
            let mut problems: Vec<(String, String)> = settings
                .tasks
                .iter()
                .filter(|(_, model)| !settings.models.contains_key(*model))
                .map(|(task, model)| {
                    let known: Vec<&str> = settings.models.keys().map(String::as_str).collect();
                    let known = if known.is_empty() { "none are defined".to_owned() } else { known.join(", ") };
                    (format!("/tasks/{task}"), format!("no model named `{model}` in `models` ({known})"))
                })
                .collect();
            // Numbers YAML reads that no schema range catches (`.nan`, `.inf`).
            for (name, model) in &settings.models {
                if let Some(price) = model.price
                    && !(price.input.is_finite()
                        && price.output.is_finite()
                        && price.input >= 0.0
                        && price.output >= 0.0)
                {
                    problems.push((format!("/models/{name}/price"), "prices are finite numbers, 0 or more".to_owned()));
                }
            }
            let budgets = [
                ("thread", &settings.budgets.thread),
                ("help_per_day", &settings.budgets.help_per_day),
                ("actor_per_day", &settings.budgets.actor_per_day),
            ];
            for (name, budget) in budgets {
                if let Some(usd) = budget.and_then(|budget| budget.usd)
                    && !(usd.is_finite() && usd > 0.0)
                {
                    problems.push((format!("/budgets/{name}/usd"), "a budget is a finite number above 0".to_owned()));
                }
            }
            // A budget in dollars counts every model's tokens at its price: one without a price would spend free.
            let budgets = &settings.budgets;
            let in_usd = [&budgets.thread, &budgets.help_per_day, &budgets.actor_per_day]
                .into_iter()
                .any(|budget| budget.is_some_and(|budget| budget.usd.is_some()));
            if in_usd {
                for (name, model) in &settings.models {
                    if model.price.is_none() {
                        let why = "a budget in dollars is set (`budgets`), so every model needs its price \
                                   (`price: {input: <$ per million tokens>, output: <$ per million tokens>}`)";
                        problems.push((format!("/models/{name}"), why.to_owned()));
                    }
                }
            }
            // Metrics served without a token must not leave the machine.
            if let Some(listen) = &settings.metrics.listen
                && settings.metrics.listen_address().is_none()
            {
                let why = format!(
                    "`{listen}` is not a loopback address with a port (such as 127.0.0.1:9464): /metrics is served \
                     there without a token, so only this machine may reach it"
                );
                problems.push(("/metrics/listen".to_owned(), why));
            }
            problems
        })
    }

    /// The model name a run uses: the help's or agent's `model`, else its `task` routed by `tasks`, else the
    /// `default` task, else the only model when there is exactly one. `None` when nothing is configured.
    pub fn route(&self, model: Option<&str>, task: Option<&str>) -> Option<String> {
        if let Some(model) = model {
            return Some(model.to_owned());
        }
        let task = task.unwrap_or(DEFAULT_TASK);
        if let Some(model) = self.tasks.get(task).or_else(|| self.tasks.get(DEFAULT_TASK)) {
            return Some(model.clone());
        }
        match self.models.keys().collect::<Vec<_>>().as_slice() {
            [only] => Some((*only).clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_settings_file_parses_and_routes() {
        let text = "version: 1\nmodels:\n  gpt:\n    provider: openai\n    model: gpt-4.1-mini\n    key: OPENAI_API_KEY\n  \
                    local:\n    provider: openai\n    base_url: http://127.0.0.1:11434/v1\n    model: qwen\ntasks:\n  \
                    default: gpt\n  code: local\nlimits:\n  max_steps: 12\n";
        let settings = Settings::parse("hal.yaml", text).expect("valid");
        assert_eq!(settings.route(None, Some("code")).as_deref(), Some("local"));
        assert_eq!(settings.route(None, Some("summary")).as_deref(), Some("gpt"), "unknown tasks use the default");
        assert_eq!(settings.route(Some("x"), None).as_deref(), Some("x"));
        assert_eq!(settings.limits.max_steps, Some(12));
    }

    #[test]
    fn reply_limits_parse_and_unknown_ones_are_located() {
        let text = "limits:\n  idle_seconds: 0.5\n  reply:\n    text_kb: 64\n    line_kb: 512\n    raw_kb: 0\n    \
                    tool_calls: 8\n    arguments_kb: 128\n";
        let limits = Settings::parse("hal.yaml", text).expect("valid").limits;
        assert_eq!(limits.idle_seconds, Some(0.5));
        assert_eq!(
            limits.reply,
            ReplyLimits {
                text_kb: Some(64),
                line_kb: Some(512),
                raw_kb: Some(0),
                tool_calls: Some(8),
                arguments_kb: Some(128)
            }
        );
        let error = Settings::parse("hal.yaml", "limits:\n  reply:\n    text_mb: 1\n").expect_err("invalid");
        assert!(error.to_string().starts_with("hal.yaml:3:5: limits.reply.text_mb: unknown field"), "{error}");
        let error = Settings::parse("hal.yaml", "limits:\n  idle_seconds: 0\n").expect_err("invalid");
        assert!(error.to_string().starts_with("hal.yaml:2:17: limits.idle_seconds:"), "{error}");
    }

    #[test]
    fn a_task_routed_to_a_missing_model_is_located() {
        let text = "version: 1\nmodels:\n  gpt:\n    provider: openai\n    model: m\ntasks:\n  default: gtp\n";
        let error = Settings::parse("hal.yaml", text).expect_err("invalid").to_string();
        assert_eq!(error, "hal.yaml:7:12: tasks.default: no model named `gtp` in `models` (gpt)");
    }

    #[test]
    fn the_sandbox_section_parses_and_shares_its_limits_with_the_manifest_schema() {
        let text = "sandbox:\n  limits:\n    wall_ms: 500\n  isolates:\n    http:\n      http: [api.example.com]\n      limits: {fuel: 10}\n";
        let settings = Settings::parse("hal.yaml", text).expect("valid");
        assert_eq!(settings.sandbox.limits.wall_ms, Some(500));
        assert_eq!(settings.sandbox.isolates["http"].http, ["api.example.com"]);
        assert_eq!(settings.sandbox.isolates["http"].limits.fuel, Some(10));
        let error = Settings::parse("hal.yaml", "sandbox:\n  limits:\n    wall_sec: 1\n").expect_err("invalid");
        assert!(error.to_string().starts_with("hal.yaml:3:5: sandbox.limits.wall_sec: unknown field"), "{error}");
        let ours: serde_json::Value = serde_json::from_str(SETTINGS_SCHEMA).expect("json");
        let theirs: serde_json::Value = serde_json::from_str(crate::isolate::ISOLATE_SCHEMA).expect("json");
        assert_eq!(ours["$defs"]["limits"], theirs["$defs"]["limits"]);
    }

    #[test]
    fn a_bad_provider_is_located() {
        let text = "models:\n  gpt:\n    provider: openia\n    model: m\n";
        let error = Settings::parse("hal.yaml", text).expect_err("invalid").to_string();
        assert!(error.starts_with("hal.yaml:3:15: models.gpt.provider:"), "{error}");
    }

    #[test]
    fn the_file_hal_init_writes_is_valid_and_routes_nowhere() {
        let text = include_str!("../../hal-store/src/default-hal.yaml");
        let settings = Settings::parse("hal.yaml", text).expect("valid");
        assert_eq!(settings.route(None, None), None);
        // Uncomment the example: lines `# key:` or `#   key: value`, without their trailing comments.
        let is_yaml = |line: &str| {
            let rest = line.trim_start();
            let key: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            !key.is_empty() && rest[key.len()..].starts_with(':')
        };
        let mut uncommented = String::new();
        for line in text.lines() {
            let line = match line.strip_prefix("# ") {
                Some(rest) if is_yaml(rest) => rest,
                _ => line,
            };
            uncommented.push_str(line.split("  #").next().unwrap_or(line));
            uncommented.push('\n');
        }
        let example = Settings::parse("hal.yaml", &uncommented).map_err(|e| format!("{e}\n{uncommented}"));
        assert_eq!(example.expect("the commented example is valid once uncommented").models.len(), 3);
    }
}
