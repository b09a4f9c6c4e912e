//! What runs spent and called, as HAL records it beside the repository (`.git/hal/record/spent`), for budgets and
//! rate limits. Each reply HAL commits carries its tokens in its trailers; the same figures (and the cost by the
//! model's price when it was written) are appended here as it is written, with every owner's grant of more budget
//! and every tool call HAL starts. Every process and every reload of `main` reads the same log, only what was
//! appended since it last looked: a check costs the same on any step, a restart forgets nothing, and a thread's
//! branch that is deleted, moved back or pushed over keeps what it spent. Only HAL appends here: a pushed commit,
//! whatever its trailers claim, spends and grants nothing.
//!
//! Lines: `spend <time> <tokens> <micro-usd> <branch> <help>`, `grant <time> <tokens> <micro-usd> <branch>
//! <budget>` (`thread`, `help-per-day <help> <day>`, `actor-per-day <actor> <day>`; a day is days since the Unix
//! epoch, UTC) and `call <time> <branch> <help> <tool>`.

use std::collections::{HashMap, VecDeque};

use crate::Result;
use crate::home::Home;

/// Seconds in a day.
pub const DAY: i64 = 86_400;
/// How long calls are kept in memory for rate limits (calls per hour).
const CALL_WINDOW: i64 = 3_600;

/// Tokens and dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    /// Prompt and completion tokens.
    pub tokens: u64,
    /// US dollars.
    pub usd: f64,
}

impl Spend {
    fn add(&mut self, tokens: u64, micro_usd: u64) {
        self.tokens = self.tokens.saturating_add(tokens);
        self.usd += micro_usd as f64 / 1_000_000.0;
    }
}

/// What was spent against one budget, and what owners granted on top of it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Account {
    /// Spent.
    pub spent: Spend,
    /// Granted by owners.
    pub granted: Spend,
}

/// Which budget a grant raises.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Budget {
    /// A thread's (on the branch the grant is recorded with).
    Thread,
    /// A help's, on one day.
    HelpPerDay(String, i64),
    /// An actor's, on one day.
    ActorPerDay(String, i64),
}

impl Budget {
    /// Its name in the record, requests and statements.
    pub fn name(&self) -> String {
        match self {
            Budget::Thread => "thread".to_owned(),
            Budget::HelpPerDay(help, day) => format!("help-per-day {} {day}", word(help)),
            Budget::ActorPerDay(actor, day) => format!("actor-per-day {} {day}", word(actor)),
        }
    }

    /// The budget a name names.
    pub fn parse(name: &str) -> Option<Budget> {
        let mut words = name.split(' ');
        let budget = match (words.next()?, words.next(), words.next().map(str::parse::<i64>)) {
            ("thread", None, None) => Budget::Thread,
            ("help-per-day", Some(help), Some(Ok(day))) => Budget::HelpPerDay(unword(help), day),
            ("actor-per-day", Some(actor), Some(Ok(day))) => Budget::ActorPerDay(unword(actor), day),
            _ => return None,
        };
        words.next().is_none().then_some(budget)
    }
}

/// A tool call HAL started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// When, in seconds since the Unix epoch.
    pub time: i64,
    /// On which thread's branch.
    pub branch: String,
    /// In a run of which help.
    pub help: String,
    /// The tool.
    pub tool: String,
    /// Its other names (the plugin version it ran, `wc@v2.count`): a limit naming one counts the call too.
    pub aliases: Vec<String>,
}

impl Call {
    /// Its names: the tool's, then its aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.tool.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// The actor whose thread the call was made on (`threads/<actor>/<id>`).
    pub fn actor(&self) -> &str {
        actor_of(&self.branch)
    }
}

/// The index of the log.
#[derive(Default)]
pub(crate) struct SpentIndex {
    threads: HashMap<String, Account>,
    days: HashMap<(i64, Key), Account>,
    /// The calls of the last hour (as of the newest one read), oldest first.
    calls: VecDeque<Call>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Help(String),
    Actor(String),
}

/// The actor of a thread's branch.
fn actor_of(branch: &str) -> &str {
    branch.strip_prefix("threads/").and_then(|rest| rest.split('/').next()).unwrap_or_default()
}

/// Index one line of the log (a torn or unknown line is skipped).
pub(crate) fn add_line(index: &mut SpentIndex, line: &str) {
    let mut words = line.splitn(6, ' ');
    let (Some(kind), Some(Ok(time))) = (words.next(), words.next().map(str::parse::<i64>)) else { return };
    match kind {
        "spend" | "grant" => {
            let (Some(Ok(tokens)), Some(Ok(micro))) =
                (words.next().map(str::parse::<u64>), words.next().map(str::parse::<u64>))
            else {
                return;
            };
            let (Some(branch), Some(last)) = (words.next().map(unword), words.next()) else { return };
            let day = time.div_euclid(DAY);
            if kind == "spend" {
                let actor = actor_of(&branch).to_owned();
                index.days.entry((day, Key::Help(unword(last)))).or_default().spent.add(tokens, micro);
                index.days.entry((day, Key::Actor(actor))).or_default().spent.add(tokens, micro);
                index.threads.entry(branch).or_default().spent.add(tokens, micro);
                return;
            }
            let account = match Budget::parse(last) {
                Some(Budget::Thread) => index.threads.entry(branch).or_default(),
                Some(Budget::HelpPerDay(help, day)) => index.days.entry((day, Key::Help(help))).or_default(),
                Some(Budget::ActorPerDay(actor, day)) => index.days.entry((day, Key::Actor(actor))).or_default(),
                None => return,
            };
            account.granted.add(tokens, micro);
        }
        "call" => {
            // `call <time> <branch> <help> <tool> [<alias>…]` (lines from before aliases end at the tool).
            let mut rest = line.splitn(3, ' ').nth(2).unwrap_or_default().trim_end().split(' ');
            let (Some(branch), Some(help), Some(tool)) = (rest.next(), rest.next(), rest.next()) else { return };
            let aliases = rest.map(unword).collect();
            // A line dated in the future (a clock stepped back since) would never leave the window.
            if time > now() + CLOCK_SLACK {
                return;
            }
            let call = Call { time, branch: unword(branch), help: unword(help), tool: unword(tool), aliases };
            index.calls.push_back(call);
            // Forget the calls that left the window by the clock now (lines come about in time order: no line is
            // dated in the future, and processes append as they call).
            let since = now() - CALL_WINDOW;
            while index.calls.front().is_some_and(|first| first.time < since) {
                index.calls.pop_front();
            }
        }
        _ => {}
    }
}

/// Seconds since the Unix epoch, by this machine's clock: what the record is dated by (not a commit's date, which
/// `GIT_COMMITTER_DATE` may pin), and what budgets' days and rate limits' hours are counted in.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

/// How far in the future a call's line may be dated and still count (clocks of processes differ a little).
const CLOCK_SLACK: i64 = 300;

/// What one check reads: a thread's account, and its help's and actor's on a day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounts {
    /// The thread's, over its life.
    pub thread: Account,
    /// The help's, on the day.
    pub help: Account,
    /// The actor's, on the day.
    pub actor: Account,
}

/// What a word of a line may not hold as it is: spaces and line breaks (which end it), `%` (which escapes).
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'%');

/// `text` as one word of a line (a help or a tool may be named anything: a model picks tool names).
pub(crate) fn word(text: &str) -> String {
    if text.is_empty() {
        return "%".to_owned();
    }
    percent_encoding::utf8_percent_encode(text, ESCAPED).to_string()
}

/// The text of a word of a line.
pub(crate) fn unword(word: &str) -> String {
    if word == "%" {
        return String::new();
    }
    percent_encoding::percent_decode_str(word).decode_utf8_lossy().into_owned()
}

/// Micro-dollars of `usd` (a negative or not finite cost counts as none).
fn micro(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 { (usd * 1_000_000.0).round() as u64 } else { 0 }
}

impl Home {
    /// Record that a reply HAL wrote on `branch` in a run of `help` spent `tokens`, costing `usd`.
    pub fn record_spend(&self, branch: &str, help: &str, tokens: u64, usd: f64) -> Result<()> {
        let line = format!("spend {} {tokens} {} {} {}\n", now(), micro(usd), word(branch), word(help));
        self.record().add_spent(&line)
    }

    /// Record that an owner granted `tokens` and `usd` more of `budget` (a thread's: the one on `branch`).
    pub fn record_grant(&self, branch: &str, budget: &Budget, tokens: u64, usd: f64) -> Result<()> {
        let line = format!("grant {} {tokens} {} {} {}\n", now(), micro(usd), word(branch), budget.name());
        self.record().add_spent(&line)
    }

    /// Record that HAL starts a call of `tool` (also named `aliases`) on `branch` in a run of `help`.
    pub fn record_call(&self, branch: &str, help: &str, tool: &str, aliases: &[String]) -> Result<()> {
        let mut line = format!("call {} {} {} {}", now(), word(branch), word(help), word(tool));
        for alias in aliases {
            line.push(' ');
            line.push_str(&word(alias));
        }
        line.push('\n');
        self.record().add_spent(&line)
    }

    /// What the thread on `branch` spent and was granted, and `help`'s and its actor's on `day`.
    pub fn accounts(&self, branch: &str, help: &str, day: i64) -> Result<Accounts> {
        self.record().read_spent(|index| Accounts {
            thread: index.threads.get(branch).copied().unwrap_or_default(),
            help: index.days.get(&(day, Key::Help(help.to_owned()))).copied().unwrap_or_default(),
            actor: index.days.get(&(day, Key::Actor(actor_of(branch).to_owned()))).copied().unwrap_or_default(),
        })
    }

    /// When HAL started the calls of the last hour (by the newest recorded) that `keep` keeps, oldest first.
    pub fn call_times(&self, keep: impl Fn(&Call) -> bool) -> Result<Vec<i64>> {
        self.record().read_spent(|index| index.calls.iter().filter(|call| keep(call)).map(|call| call.time).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{Budget, SpentIndex, add_line};

    #[test]
    fn lines_add_up_by_thread_help_and_actor_and_grants_by_day() {
        let mut index = SpentIndex::default();
        let day = 20_000;
        let time = day * super::DAY + 5;
        for line in [
            format!("spend {time} 100 2000 threads/alice/a writer"),
            format!("spend {time} 50 1000 threads/alice/b writer"),
            format!("spend {} 7 0 threads/alice/a writer", time - super::DAY),
            format!("grant {time} 1000 0 threads/alice/a thread"),
            format!("grant {time} 0 5000000 threads/alice/b help-per-day writer {day}"),
            "spend garbage".to_owned(),
            format!("call {} threads/alice/a my%20writer http.fetch", super::now()),
            format!("call {} threads/alice/a writer http.fetch", super::now() + 3_600),
            format!("call {} threads/alice/a writer wc.count wc@v2.count", super::now()),
        ] {
            add_line(&mut index, &line);
        }
        let thread = index.threads["threads/alice/a"];
        assert_eq!((thread.spent.tokens, thread.granted.tokens), (107, 1000));
        let help = index.days[&(day, super::Key::Help("writer".into()))];
        assert_eq!(help.spent.tokens, 150);
        assert!((help.spent.usd - 0.003).abs() < 1e-9 && (help.granted.usd - 5.0).abs() < 1e-9);
        assert_eq!(index.days[&(day, super::Key::Actor("alice".into()))].spent.tokens, 150);
        assert_eq!(index.calls.len(), 2, "the call dated an hour ahead is not counted");
        let names: Vec<&str> = index.calls[1].names().collect();
        assert_eq!(names, ["wc.count", "wc@v2.count"], "a call's aliases are read back");
        assert!(index.calls[0].aliases.is_empty(), "a line without aliases has none");
        assert_eq!((index.calls[0].actor(), index.calls[0].help.as_str()), ("alice", "my writer"));
        assert_eq!(super::word("a b%c"), "a%20b%25c");
        assert_eq!(
            Budget::parse(&Budget::HelpPerDay("my help".into(), 3).name()),
            Some(Budget::HelpPerDay("my help".into(), 3))
        );
        assert_eq!(Budget::parse("help-per-day writer 20000"), Some(Budget::HelpPerDay("writer".into(), 20_000)));
        assert_eq!(Budget::parse("thread x"), None);
    }
}
