//! Counters and histograms of the daemon's work, rendered in Prometheus text format for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use hal_runner::record::fact;
use hal_store::{StepKind, ThreadSummary};

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Count per bucket (not cumulative), plus one for +Inf.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let index = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[index] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in LATENCY_BUCKETS.iter().zip(self.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BUCKETS.len()];
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Counts {
    steps: BTreeMap<String, u64>,
    model_calls: BTreeMap<String, u64>,
    model_latency: Histogram,
    tokens_in: u64,
    tokens_out: u64,
    tool_calls: BTreeMap<(String, String), u64>,
    runs: BTreeMap<String, u64>,
    turn_seconds: Histogram,
    reloads: u64,
    reload_problems: u64,
}

/// The daemon's metrics.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    counts: Mutex<Counts>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Counts)) {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut counts);
    }

    /// A step was committed by a run.
    pub(crate) fn step(&self, kind: &StepKind, facts: &[(String, String)]) {
        let get = |name: &str| facts.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let number = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        self.with(|c| {
            *c.steps.entry(kind.as_str().to_owned()).or_default() += 1;
            match kind {
                StepKind::Reply => {
                    *c.model_calls.entry(get(fact::MODEL).unwrap_or("unknown").to_owned()).or_default() += 1;
                    c.model_latency.observe(number(fact::LATENCY_MS) as f64 / 1000.0);
                    c.tokens_in += number(fact::TOKENS_IN);
                    c.tokens_out += number(fact::TOKENS_OUT);
                }
                StepKind::Tool => {
                    let tool = get(fact::TOOL).unwrap_or("unknown");
                    let isolate = tool.split_once('.').map_or(tool, |(isolate, _)| isolate).to_owned();
                    let outcome = get(fact::OUTCOME).unwrap_or("ok").to_owned();
                    *c.tool_calls.entry((isolate, outcome)).or_default() += 1;
                }
                _ => {}
            }
        });
    }

    /// A turn ended with `status`.
    pub(crate) fn turn_ended(&self, status: &str) {
        self.with(|c| *c.runs.entry(status.to_owned()).or_default() += 1);
    }

    /// A turn that ran took `seconds`.
    pub(crate) fn turn_seconds(&self, seconds: f64) {
        self.with(|c| c.turn_seconds.observe(seconds));
    }

    /// `main` was reloaded with `problems` files that do not load.
    pub(crate) fn reload(&self, problems: usize) {
        self.with(|c| {
            c.reloads += 1;
            c.reload_problems = problems as u64;
        });
    }

    /// Everything, with the threads by status and the turns in progress, in Prometheus text format.
    pub(crate) fn render(&self, threads: &[ThreadSummary], running: usize) -> String {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(&mut out, "hal_steps_total", "counter", "Steps committed by runs, by kind.");
        for (kind, n) in &counts.steps {
            let _ = writeln!(out, "hal_steps_total{{kind=\"{kind}\"}} {n}");
        }
        family(&mut out, "hal_model_calls_total", "counter", "Model calls, by model.");
        for (model, n) in &counts.model_calls {
            let _ = writeln!(out, "hal_model_calls_total{{model=\"{}\"}} {n}", escape(model));
        }
        family(&mut out, "hal_model_latency_seconds", "histogram", "Time to a model's complete reply.");
        counts.model_latency.render(&mut out, "hal_model_latency_seconds", "");
        family(&mut out, "hal_tokens_total", "counter", "Model tokens, by direction.");
        let _ = writeln!(out, "hal_tokens_total{{direction=\"input\"}} {}", counts.tokens_in);
        let _ = writeln!(out, "hal_tokens_total{{direction=\"output\"}} {}", counts.tokens_out);
        family(&mut out, "hal_tool_calls_total", "counter", "Tool calls, by isolate and outcome (ok or error).");
        for ((isolate, outcome), n) in &counts.tool_calls {
            let _ = writeln!(out, "hal_tool_calls_total{{isolate=\"{}\",outcome=\"{outcome}\"}} {n}", escape(isolate));
        }
        family(&mut out, "hal_turns_total", "counter", "Turns the daemon ran, by how they ended.");
        for (status, n) in &counts.runs {
            let _ = writeln!(out, "hal_turns_total{{status=\"{status}\"}} {n}");
        }
        family(&mut out, "hal_turn_seconds", "histogram", "Wall time of one turn.");
        counts.turn_seconds.render(&mut out, "hal_turn_seconds", "");
        family(&mut out, "hal_turns_running", "gauge", "Turns in progress.");
        let _ = writeln!(out, "hal_turns_running {running}");
        family(&mut out, "hal_threads", "gauge", "Threads, by status.");
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for thread in threads {
            *by_status.entry(thread.status.as_str()).or_default() += 1;
        }
        for (status, n) in by_status {
            let _ = writeln!(out, "hal_threads{{status=\"{}\"}} {n}", escape(status));
        }
        family(&mut out, "hal_reloads_total", "counter", "Reloads of main's helps, agents, isolates and hal.yaml.");
        let _ = writeln!(out, "hal_reloads_total {}", counts.reloads);
        family(&mut out, "hal_invalid_files", "gauge", "Files on main that do not load.");
        let _ = writeln!(out, "hal_invalid_files {}", counts.reload_problems);
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_carry_their_labels() {
        let metrics = Metrics::default();
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
        assert!(text.contains("hal_model_latency_seconds_bucket{le=\"1\"} 2"), "{text}");
        assert!(text.contains("hal_model_latency_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("hal_tool_calls_total{isolate=\"files\",outcome=\"error\"} 1"), "{text}");
        assert!(text.contains("hal_steps_total{kind=\"reply\"} 2"), "{text}");
    }
}
