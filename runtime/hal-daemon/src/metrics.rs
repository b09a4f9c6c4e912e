//! The daemon's metrics for `GET /metrics`, kept and rendered by `prometheus-client` (the Prometheus project's own
//! Rust client) in OpenMetrics text: counters end in `_total`, the text ends with `# EOF`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use hal_runner::record::fact;
use hal_store::{StepKind, ThreadSummary};

/// The content type of the text [`Metrics::render`] makes.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The isolate label of calls to a tool HAL does not have. A tool's name is the model's word (a call to a tool
/// that does not exist is counted too), and every label value is a series kept for the daemon's life: only the
/// isolates loaded from main (which an owner signed) are labelled by name, so a model inventing names grows
/// nothing.
const UNKNOWN: &str = "unknown";

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByKind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByModel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByDirection {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByTool {
    isolate: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByStatus {
    status: String,
}

/// The daemon's metrics: each a handle into `registry`, which renders them all.
pub(crate) struct Metrics {
    registry: Registry,
    steps: Family<ByKind, Counter>,
    model_calls: Family<ByModel, Counter>,
    model_latency: Histogram,
    tokens: Family<ByDirection, Counter>,
    tool_calls: Family<ByTool, Counter>,
    turns: Family<ByStatus, Counter>,
    turn_seconds: Histogram,
    running: Gauge,
    threads: Family<ByStatus, Gauge>,
    reloads: Counter,
    invalid_files: Gauge,
    /// The isolates (and groups of built-in tools) loaded from main, the names the tool-call counter labels.
    known: std::sync::RwLock<std::collections::BTreeSet<String>>,
    /// Held while a render sets the point-in-time gauges and encodes: two scrapes at once never mix their counts.
    rendering: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let steps = Family::<ByKind, Counter>::default();
        registry.register("hal_steps", "Steps committed by runs, by kind", steps.clone());
        let model_calls = Family::<ByModel, Counter>::default();
        registry.register("hal_model_calls", "Model calls, by model", model_calls.clone());
        let model_latency = Histogram::new(LATENCY_BUCKETS);
        registry.register("hal_model_latency_seconds", "Time to a model's complete reply", model_latency.clone());
        let tokens = Family::<ByDirection, Counter>::default();
        registry.register("hal_tokens", "Model tokens, by direction", tokens.clone());
        let tool_calls = Family::<ByTool, Counter>::default();
        let help = "Tool calls, by isolate and outcome (ok or error)";
        registry.register("hal_tool_calls", help, tool_calls.clone());
        let turns = Family::<ByStatus, Counter>::default();
        registry.register("hal_turns", "Turns the daemon ran, by how they ended", turns.clone());
        let turn_seconds = Histogram::new(LATENCY_BUCKETS);
        registry.register("hal_turn_seconds", "Wall time of one turn", turn_seconds.clone());
        let running = Gauge::default();
        registry.register("hal_turns_running", "Turns in progress", running.clone());
        let threads = Family::<ByStatus, Gauge>::default();
        registry.register("hal_threads", "Threads, by status", threads.clone());
        let reloads = Counter::default();
        let help = "Reloads of main's helps, agents, isolates and hal.yaml";
        registry.register("hal_reloads", help, reloads.clone());
        let invalid_files = Gauge::default();
        registry.register("hal_invalid_files", "Files on main that do not load", invalid_files.clone());
        // Both directions are counted from the start, at zero: a scraper sees the series before any model call.
        for direction in ["input", "output"] {
            let _ = tokens.get_or_create(&ByDirection { direction: direction.to_owned() });
        }
        Metrics {
            registry,
            steps,
            model_calls,
            model_latency,
            tokens,
            tool_calls,
            turns,
            turn_seconds,
            running,
            threads,
            reloads,
            invalid_files,
            known: std::sync::RwLock::default(),
            rendering: std::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    /// A step was committed by a run.
    pub(crate) fn step(&self, kind: &StepKind, facts: &[(String, String)]) {
        let get = |name: &str| facts.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let number = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        self.steps.get_or_create(&ByKind { kind: kind.as_str().to_owned() }).inc();
        match kind {
            StepKind::Reply => {
                let model = get(fact::MODEL).unwrap_or("unknown").to_owned();
                self.model_calls.get_or_create(&ByModel { model }).inc();
                self.model_latency.observe(number(fact::LATENCY_MS) as f64 / 1000.0);
                let count = |direction: &str, n: u64| {
                    self.tokens.get_or_create(&ByDirection { direction: direction.to_owned() }).inc_by(n);
                };
                count("input", number(fact::TOKENS_IN));
                count("output", number(fact::TOKENS_OUT));
            }
            StepKind::Tool => {
                let tool = get(fact::TOOL).unwrap_or("unknown");
                let isolate = self.isolate_label(tool.split_once('.').map_or(tool, |(isolate, _)| isolate));
                let outcome = get(fact::OUTCOME).unwrap_or("ok").to_owned();
                self.tool_calls.get_or_create(&ByTool { isolate, outcome }).inc();
            }
            _ => {}
        }
    }

    /// The label for calls to `isolate`: its name when it is loaded, else [`UNKNOWN`].
    fn isolate_label(&self, isolate: &str) -> String {
        let known = self.known.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(isolate) { isolate.to_owned() } else { UNKNOWN.to_owned() }
    }

    /// A turn ended with `status`.
    pub(crate) fn turn_ended(&self, status: &str) {
        self.turns.get_or_create(&ByStatus { status: status.to_owned() }).inc();
    }

    /// A turn that ran took `seconds`.
    pub(crate) fn turn_seconds(&self, seconds: f64) {
        self.turn_seconds.observe(seconds);
    }

    /// `main` was reloaded with `problems` files that do not load, offering `callable`: the tools (full names) and
    /// the helps (a sub-help is called as a tool of its name).
    pub(crate) fn reload<'a>(&self, problems: usize, callable: impl IntoIterator<Item = &'a str>) {
        let isolates = callable.into_iter().map(|tool| tool.split_once('.').map_or(tool, |(isolate, _)| isolate));
        *self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner) = isolates.map(str::to_owned).collect();
        self.reloads.inc();
        self.invalid_files.set(i64::try_from(problems).unwrap_or(i64::MAX));
    }

    /// Everything, with the threads by status and the turns in progress as they are now, in OpenMetrics text.
    pub(crate) fn render(&self, threads: &[ThreadSummary], running: usize) -> String {
        let _rendering = self.rendering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.running.set(i64::try_from(running).unwrap_or(i64::MAX));
        // A status no thread has any more is not shown at zero forever: the family is counted afresh.
        let mut by_status = std::collections::BTreeMap::<&str, i64>::new();
        for thread in threads {
            *by_status.entry(thread.status.as_str()).or_default() += 1;
        }
        self.threads.clear();
        for (status, n) in by_status {
            self.threads.get_or_create(&ByStatus { status: status.to_owned() }).set(n);
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(target: "hal_daemon", %error, "the metrics did not render");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_carry_their_labels() {
        let metrics = Metrics::default();
        metrics.reload(0, ["files.write"]);
        let reply =
            |ms: &str| vec![("Hal-Model".to_owned(), "m".to_owned()), ("Hal-Latency-Ms".to_owned(), ms.to_owned())];
        metrics.step(&StepKind::Reply, &reply("20"));
        metrics.step(&StepKind::Reply, &reply("700"));
        metrics.step(
            &StepKind::Tool,
            &[("Hal-Tool".into(), "files.write".into()), ("Hal-Outcome".into(), "error".into())],
        );
        let text = metrics.render(&[], 0);
        assert!(text.contains("hal_model_calls_total{model=\"m\"} 2"), "{text}");
        assert!(text.contains("hal_model_latency_seconds_bucket{le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("hal_model_latency_seconds_bucket{le=\"1.0\"} 2"), "{text}");
        assert!(text.contains("hal_model_latency_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("hal_tool_calls_total{isolate=\"files\",outcome=\"error\"} 1"), "{text}");
        assert!(text.contains("hal_steps_total{kind=\"reply\"} 2"), "{text}");
        assert!(text.contains("# TYPE hal_steps counter") && text.ends_with("# EOF\n"), "OpenMetrics: {text}");
    }

    /// Regression: the isolate label was the model's word for the tool, so a model calling made-up tools grew one
    /// series per name for the daemon's life.
    #[test]
    fn tool_names_a_model_makes_up_do_not_grow_the_series_without_bound() {
        let metrics = Metrics::default();
        metrics.reload(0, ["files.read", "files.write", "http.get"]);
        metrics.step(&StepKind::Tool, &[("Hal-Tool".into(), "files.read".into())]);
        for n in 0..1_000 {
            let made_up = format!("made{n}{}.x", "y".repeat(200));
            metrics.step(&StepKind::Tool, &[("Hal-Tool".into(), made_up), ("Hal-Outcome".into(), "error".into())]);
        }
        metrics.step(&StepKind::Tool, &[("Hal-Tool".into(), "files.write".into())]);
        let text = metrics.render(&[], 0);
        let series = text.lines().filter(|line| line.starts_with("hal_tool_calls_total{")).count();
        assert_eq!(series, 2, "{text}");
        assert!(text.contains("hal_tool_calls_total{isolate=\"files\",outcome=\"ok\"} 2"), "{text}");
        assert!(text.contains("hal_tool_calls_total{isolate=\"unknown\",outcome=\"error\"} 1000"), "{text}");
    }
}
