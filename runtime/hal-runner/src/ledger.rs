//! What runs spent, read from the commits: every reply step HAL wrote carries its tokens and its model (whose
//! price `hal.yaml` gives), every budget decision an owner signed what it granted. The ledger keeps running totals
//! per thread, per help per day and per actor per day (UTC days), each thread's synced to the tip it last read:
//! a check walks only the steps written since, so it costs the same on the ten-thousandth step as on the first.
//! Built from the commits when a process first needs it (and again each new day), it holds across restarts.
//!
//! Only steps HAL wrote on the branch count (a pushed reply claiming a million tokens exhausts nothing), and only a
//! step HAL wrote before the day began ends the walk back for the day (a pushed commit dated last year hides no
//! spend).

use std::collections::HashMap;
use std::sync::Mutex;

use gix::ObjectId;
use hal_spec::budget::{Budget, Budgets, Price};
use hal_store::{Home, Step, StepKind, ThreadRef};
use hal_trust::approval::Subject;

use crate::error::RunError;
use crate::record::{DecisionData, StepData, fact};

/// Seconds in a (UTC) day.
const DAY: i64 = 86_400;
/// Most steps one walk reads back.
const LOOK_BACK: usize = 100_000;

/// Tokens and dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    /// Prompt and completion tokens.
    pub tokens: u64,
    /// US dollars, by the models' prices.
    pub usd: f64,
}

impl Spend {
    fn add(&mut self, other: Spend) {
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.usd += other.usd;
    }

    fn sub(&mut self, other: Spend) {
        self.tokens = self.tokens.saturating_sub(other.tokens);
        self.usd = (self.usd - other.usd).max(0.0);
    }
}

/// Which budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Which {
    /// The thread's.
    Thread,
    /// A help's, per day.
    HelpPerDay(String),
    /// An actor's, per day.
    ActorPerDay(String),
}

impl Which {
    /// Its name in requests and statements: `thread`, `help-per-day <help>`, `actor-per-day <actor>`.
    pub fn name(&self) -> String {
        match self {
            Which::Thread => "thread".to_owned(),
            Which::HelpPerDay(help) => format!("help-per-day {help}"),
            Which::ActorPerDay(actor) => format!("actor-per-day {actor}"),
        }
    }

    /// The budget a name names.
    pub fn parse(name: &str) -> Option<Which> {
        match name.split_once(' ') {
            None if name == "thread" => Some(Which::Thread),
            Some(("help-per-day", help)) => Some(Which::HelpPerDay(help.to_owned())),
            Some(("actor-per-day", actor)) => Some(Which::ActorPerDay(actor.to_owned())),
            _ => None,
        }
    }
}

/// A budget's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Tokens.
    Tokens,
    /// US dollars.
    Usd,
}

impl Unit {
    /// Its name: `tokens` or `usd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Tokens => "tokens",
            Unit::Usd => "usd",
        }
    }
}

/// A budget a run has reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Over {
    /// Which.
    pub which: Which,
    /// In which unit.
    pub unit: Unit,
    /// What was spent.
    pub spent: f64,
    /// The budget, with what owners granted.
    pub limit: f64,
}

/// One thread's spend over its life, synced to `tip`.
#[derive(Debug, Clone, Copy, Default)]
struct ThreadBook {
    tip: Option<ObjectId>,
    spent: Spend,
    granted: Spend,
}

/// One thread's spend today, synced to `tip`.
#[derive(Debug, Clone, Default)]
struct DayBook {
    tip: Option<ObjectId>,
    by_help: HashMap<String, Spend>,
    all: Spend,
    granted: HashMap<Which, Spend>,
}

#[derive(Default)]
struct Books {
    /// The day the day books are for, once built.
    day: Option<i64>,
    threads: HashMap<String, ThreadBook>,
    days: HashMap<String, (String, DayBook)>,
    help: HashMap<String, Spend>,
    actor: HashMap<String, Spend>,
    granted: HashMap<Which, Spend>,
}

impl Books {
    /// Count `book` (on a thread of `actor`) in the day's totals (`sign` false: take it out).
    fn count(&mut self, actor: &str, book: &DayBook, sign: bool) {
        let apply = |total: &mut Spend, part: Spend| if sign { total.add(part) } else { total.sub(part) };
        for (help, spend) in &book.by_help {
            apply(self.help.entry(help.clone()).or_default(), *spend);
        }
        apply(self.actor.entry(actor.to_owned()).or_default(), book.all);
        for (which, spend) in &book.granted {
            apply(self.granted.entry(which.clone()).or_default(), *spend);
        }
    }
}

/// The running totals.
#[derive(Default)]
pub struct Ledger {
    books: Mutex<Books>,
}

impl Ledger {
    /// The first budget of `budgets` that the run of `help` on `thread` has reached, if any; `price` gives a
    /// model's price by its name in `hal.yaml`.
    pub fn over(
        &self,
        home: &Home,
        budgets: &Budgets,
        price: &dyn Fn(&str) -> Option<Price>,
        thread: &ThreadRef,
        help: &str,
    ) -> Result<Option<Over>, RunError> {
        if budgets.thread.is_none() && budgets.help_per_day.is_none() && budgets.actor_per_day.is_none() {
            return Ok(None);
        }
        let day = home.now().div_euclid(DAY);
        let mut books = self.books.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if books.day != Some(day) {
            // A new day (or the first check): today's books from every thread's commits.
            books.days.clear();
            books.help.clear();
            books.actor.clear();
            books.granted.clear();
            for other in home.threads()? {
                let book = day_book(home, &other, day * DAY, None, price)?;
                books.count(&other.actor, &book, true);
                books.days.insert(other.branch.clone(), (other.actor.clone(), book));
            }
            books.day = Some(day);
        }
        let old = books.days.remove(&thread.branch);
        let book = day_book(home, thread, day * DAY, old.as_ref().map(|(_, book)| book), price)?;
        if let Some((actor, old)) = &old {
            books.count(actor, old, false);
        }
        books.count(&thread.actor, &book, true);
        books.days.insert(thread.branch.clone(), (thread.actor.clone(), book));
        let mut over = Vec::new();
        if let Some(budget) = &budgets.thread {
            let old = books.threads.get(&thread.branch).copied();
            let book = thread_book(home, thread, old, price)?;
            books.threads.insert(thread.branch.clone(), book);
            over.extend(reached(Which::Thread, budget, book.spent, book.granted));
        }
        let granted = |which: &Which| books.granted.get(which).copied().unwrap_or_default();
        if let Some(budget) = &budgets.help_per_day {
            let which = Which::HelpPerDay(help.to_owned());
            let spent = books.help.get(help).copied().unwrap_or_default();
            over.extend(reached(which.clone(), budget, spent, granted(&which)));
        }
        if let Some(budget) = &budgets.actor_per_day {
            let which = Which::ActorPerDay(thread.actor.clone());
            let spent = books.actor.get(&thread.actor).copied().unwrap_or_default();
            over.extend(reached(which.clone(), budget, spent, granted(&which)));
        }
        Ok(over.into_iter().next())
    }
}

/// Whether `spent` reached `budget` with `granted` added, in either of its units.
fn reached(which: Which, budget: &Budget, spent: Spend, granted: Spend) -> Option<Over> {
    if let Some(tokens) = budget.tokens {
        let limit = tokens.saturating_add(granted.tokens);
        if spent.tokens >= limit {
            return Some(Over { which, unit: Unit::Tokens, spent: spent.tokens as f64, limit: limit as f64 });
        }
    }
    if let Some(usd) = budget.usd {
        let limit = usd + granted.usd;
        if spent.usd >= limit {
            return Some(Over { which, unit: Unit::Usd, spent: spent.usd, limit });
        }
    }
    None
}

/// What one reply step spent.
fn spend_of(step: &Step, price: &dyn Fn(&str) -> Option<Price>) -> Spend {
    let number = |key| step.fact(key).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
    let (input, output) = (number(fact::TOKENS_IN), number(fact::TOKENS_OUT));
    let usd = step.fact(fact::MODEL).and_then(price).map_or(0.0, |price| price.cost(input, output));
    Spend { tokens: input.saturating_add(output), usd }
}

/// What an owner's budget decision grants, and for which budget.
fn grant_of(step: &Step) -> Option<(Which, Spend)> {
    let decision = DecisionData::of(step).ok().flatten()?;
    let Subject::Budget { budget, unit, amount } = &decision.asked.subject else { return None };
    if !decision.approve {
        return None;
    }
    let spend = match unit.as_str() {
        "usd" => Spend { tokens: 0, usd: *amount as f64 / 100.0 },
        _ => Spend { tokens: *amount, usd: 0.0 },
    };
    Some((Which::parse(budget)?, spend))
}

/// `thread`'s book synced to its tip: `old`'s plus the steps since, or read afresh when the branch no longer
/// grows from `old`'s tip.
fn thread_book(
    home: &Home,
    thread: &ThreadRef,
    old: Option<ThreadBook>,
    price: &dyn Fn(&str) -> Option<Price>,
) -> Result<ThreadBook, RunError> {
    let old = old.unwrap_or_default();
    if old.tip == Some(thread.tip) {
        return Ok(old);
    }
    let mut new = ThreadBook { tip: Some(thread.tip), ..ThreadBook::default() };
    let mut met = false;
    for step in home.steps_back(thread).take(LOOK_BACK) {
        let step = step?;
        if Some(step.commit) == old.tip {
            met = true;
            break;
        }
        if !matches!(step.kind, StepKind::Reply | StepKind::Decision) || !home.wrote_on(step.commit, &thread.branch)? {
            continue;
        }
        match step.kind {
            StepKind::Reply => new.spent.add(spend_of(&step, price)),
            _ => {
                if let Some((Which::Thread, grant)) = grant_of(&step) {
                    new.granted.add(grant);
                }
            }
        }
    }
    if met {
        new.spent.add(old.spent);
        new.granted.add(old.granted);
    }
    Ok(new)
}

/// `thread`'s spend on the day that starts at `start`: `old`'s plus the steps since, or read back to the first
/// step HAL wrote before the day when the branch no longer grows from `old`'s tip (or there is no `old`).
fn day_book(
    home: &Home,
    thread: &ThreadRef,
    start: i64,
    old: Option<&DayBook>,
    price: &dyn Fn(&str) -> Option<Price>,
) -> Result<DayBook, RunError> {
    if let Some(old) = old
        && old.tip == Some(thread.tip)
    {
        return Ok(old.clone());
    }
    let mut new = DayBook { tip: Some(thread.tip), ..DayBook::default() };
    let mut met = false;
    for step in home.steps_back(thread).take(LOOK_BACK) {
        let step = step?;
        if old.is_some_and(|old| old.tip == Some(step.commit)) {
            met = true;
            break;
        }
        if !home.wrote_on(step.commit, &thread.branch)? {
            continue;
        }
        if step.time < start {
            break;
        }
        match step.kind {
            StepKind::Reply => {
                let spend = spend_of(&step, price);
                new.all.add(spend);
                new.by_help.entry(step.fact(fact::HELP).unwrap_or_default().to_owned()).or_default().add(spend);
            }
            StepKind::Decision => {
                if let Some((which, grant)) = grant_of(&step)
                    && which != Which::Thread
                {
                    new.granted.entry(which).or_default().add(grant);
                }
            }
            _ => {}
        }
    }
    if let (true, Some(old)) = (met, old) {
        new.all.add(old.all);
        for (help, spend) in &old.by_help {
            new.by_help.entry(help.clone()).or_default().add(*spend);
        }
        for (which, spend) in &old.granted {
            new.granted.entry(which.clone()).or_default().add(*spend);
        }
    }
    Ok(new)
}
