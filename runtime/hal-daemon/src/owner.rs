//! What the daemon tells the owner (invalid files on `main`, history it does not believe, in their backchat) and the
//! halt switch it obeys (`refs/hal/halt`, judged by `hal_trust::halt`).

use gix::ObjectId;
use hal_store::identity::HAL_ACTOR;
use hal_store::{BACKCHAT, NewStep, StepKind, ThreadStatus};

use crate::daemon::{Shared, lock};
use crate::engine::Mode;
use crate::protocol::Problem;

impl Shared {
    /// Why nothing may start, when an owner halted HAL: the switch is looked at again (a ref read; judged only
    /// when it moved), so a halt written by any process stops the next model or tool call of every run here.
    pub(crate) fn halted(&self) -> Option<String> {
        self.refresh_halt();
        lock(&self.halt).1.reason()
    }

    /// Look at `refs/hal/halt` again; judged (who signed it) only when its tip moved. When it cannot be judged,
    /// nothing starts: a switch that cannot be read must not pass for "running".
    pub(crate) fn refresh_halt(&self) {
        let tip = self.journal.with(|home| home.halt_tip());
        let tip = match tip {
            Ok(tip) => tip,
            Err(error) => return self.cannot_judge(&error.to_string()),
        };
        if lock(&self.halt).0 == Some(tip) {
            return;
        }
        // Once more before giving up: a ref read can fail while git packs refs.
        let judged = self.journal.with(hal_trust::halt::halt_state).or_else(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.journal.with(hal_trust::halt::halt_state)
        });
        match judged {
            Ok(state) => {
                if let Some(problem) = &state.problem {
                    tracing::warn!(target: "hal_daemon", %problem, "a halt not believed");
                }
                let mut halt = lock(&self.halt);
                if halt.1 != state.halt {
                    match state.halt.reason() {
                        Some(reason) => tracing::warn!(target: "hal_daemon", %reason, "halted"),
                        None => tracing::info!(target: "hal_daemon", "resumed"),
                    }
                }
                *halt = (Some(tip), state.halt);
            }
            Err(error) => self.cannot_judge(&error.to_string()),
        }
    }

    /// Halt until the switch can be read again (it is looked at again at the next check).
    fn cannot_judge(&self, error: &str) {
        tracing::error!(target: "hal_daemon", %error, "cannot read the halt switch: nothing starts");
        let reason = format!("the halt switch cannot be read ({error})");
        let null = ObjectId::null(gix::hash::Kind::Sha1);
        *lock(&self.halt) = (None, hal_trust::halt::Halt::On { by: "hal".to_owned(), reason, commit: null });
    }

    /// Tell the owner, in their backchat, what the history holds that HAL does not believe (a `hal.yaml` change or
    /// a key no owner signed, a rewritten `main`), once each: `hal status` lists them all the time.
    pub(crate) fn report_trust(&self) {
        if self.mode == Mode::InProcess {
            return;
        }
        let problems = match self.journal.with(hal_trust::Keyring::load) {
            Ok(keyring) => keyring.problems,
            Err(error) => {
                tracing::error!(target: "hal_daemon", %error, "cannot read who signed what");
                return;
            }
        };
        // A restart finds the same problems: those the backchat's newest steps already tell are not told again.
        let told: String = self.journal.with(|home| {
            let backchat = home.resolve_thread(&format!("threads/{}/{BACKCHAT}", self.owner)).ok();
            backchat
                .map(|backchat| {
                    let steps = home.steps_back(&backchat).take(200).filter_map(Result::ok);
                    steps.filter(|step| step.kind == StepKind::System).map(|step| step.text).collect()
                })
                .unwrap_or_default()
        });
        let text: String = problems
            .iter()
            .filter(|problem| lock(&self.reported_trust).insert((problem.commit, problem.text.clone())))
            .map(|problem| format!("Not believed: {} at {}: {}\n", problem.place, problem.commit, problem.text))
            .filter(|line| !told.contains(line.trim_end()))
            .collect();
        for line in text.lines() {
            tracing::warn!(target: "hal_daemon", problem = %line, "in the history, not believed");
        }
        self.tell_owner_once(text.trim_end());
    }

    /// Tell the owner, in their backchat, about problems not reported yet, and about fixed ones.
    pub(crate) fn report(&self, problems: &[Problem]) {
        // In process, problems are the command's errors; only the daemon writes to the backchat unasked.
        if self.mode == Mode::InProcess {
            return;
        }
        let mut reported = lock(&self.reported);
        let new: Vec<&Problem> = problems.iter().filter(|p| !reported.contains(p)).collect();
        let fixed: Vec<&Problem> = reported.iter().filter(|old| !problems.iter().any(|p| p.file == old.file)).collect();
        let mut text = String::new();
        for problem in &new {
            tracing::error!(target: "hal_daemon", file = %problem.file, error = %problem.error, "invalid file on main");
            text.push_str(&format!(
                "{} on main is invalid: {}{}\n",
                problem.file,
                problem.error,
                if problem.previous_in_force { " (its previous valid version stays in force)" } else { "" }
            ));
        }
        for problem in &fixed {
            tracing::info!(target: "hal_daemon", file = %problem.file, "file on main loads again");
            text.push_str(&format!("{} on main loads again.\n", problem.file));
        }
        *reported = problems.to_vec();
        drop(reported);
        self.tell_owner_once(text.trim_end());
    }

    /// A system step with `text` in the owner's backchat, unless it is empty or one of its newest steps says it.
    pub(crate) fn tell_owner_once(&self, text: &str) {
        self.tell(text, true);
    }

    /// A system step with `text` in the owner's backchat (what ran at AL2: each time).
    pub(crate) fn tell_owner(&self, text: &str) {
        self.tell(text, false);
    }

    fn tell(&self, text: &str, once: bool) {
        if text.is_empty() {
            return;
        }
        let result = self.journal.with(|home| -> hal_store::Result<()> {
            let backchat = home.backchat(&self.owner)?;
            // A restart finds the same problems: the backchat already says so.
            let said = once
                && home
                    .steps_back(&backchat)
                    .take(50)
                    .filter_map(Result::ok)
                    .any(|step| step.kind == StepKind::System && step.actor == HAL_ACTOR && step.text == text);
            if said {
                return Ok(());
            }
            let status = home.steps_back(&backchat).next().transpose()?.and_then(|s| s.status);
            // The backchat's status stays as it is: a turn running there (or cut off) is still running.
            let status = status.unwrap_or(ThreadStatus::Open);
            home.append_step(HAL_ACTOR, &backchat, &NewStep::new(StepKind::System, text, status)).map(drop)
        });
        if let Err(error) = result {
            tracing::error!(target: "hal_daemon", %error, "cannot report in the backchat");
        }
    }
}
