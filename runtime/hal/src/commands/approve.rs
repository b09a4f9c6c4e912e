//! `hal approve` and `hal deny`: an owner's signed answer to the approval request a run waits on (a call at
//! autonomy level AL1), sent through the repo's handle; the run goes on and this command shows it until its turn
//! ends, with the exit codes of `hal help run`.

use anyhow::{Result, bail};
use hal_daemon::protocol::Command;
use hal_runner::record::ApprovalData;
use hal_store::Home;
use hal_trust::approval::{APPROVAL_NAMESPACE, Scope, approval_statement};

use super::{CommandEnd, remote};
use crate::cli::Args;

/// What `hal approve` or `hal deny` answers.
pub struct Answer<'a> {
    /// The thread.
    pub thread: &'a str,
    /// The call it waits on, when the person names it (checked).
    pub call: Option<u32>,
    /// Approve, or deny.
    pub approve: bool,
    /// How far an approval of a call reaches.
    pub scope: Scope,
    /// Why it is denied.
    pub reason: &'a str,
    /// What an approval of more budget grants, in the request's unit (tokens or dollars).
    pub amount: Option<f64>,
}

/// Approve or deny what `answer.thread` waits on.
pub fn run(args: &Args, answer: &Answer<'_>) -> Result<CommandEnd> {
    let (approve, scope) = (answer.approve, answer.scope);
    let reason = answer.reason.trim();
    if !approve && reason.is_empty() {
        bail!("a denial needs a reason (--reason): the model hears it");
    }
    let home = Home::open(&args.directory)?;
    let actor = home.resolve_actor(None)?;
    let target = hal_daemon::command::thread_of(&home, &actor, answer.thread)?;
    let waiting = hal_daemon::decide::waiting_request(&home, &target)?;
    let amount = match &waiting.data {
        ApprovalData::Call(call) => {
            if let Some(asked) = answer.call
                && asked != call.index
            {
                bail!(
                    "thread {} waits for an answer about call {} ({}), not call {asked}",
                    target.id,
                    call.index,
                    call.call.name
                );
            }
            if answer.amount.is_some() {
                bail!("thread {} waits for an answer about a call, which takes no --amount", target.id);
            }
            None
        }
        ApprovalData::Budget(budget) => {
            if scope != Scope::Once {
                bail!("more of a budget is granted once, by an amount: leave out --scope");
            }
            match (approve, answer.amount) {
                (false, _) => None,
                (true, None) => bail!(
                    "thread {} waits for more of the {} budget ({} {} spent of {}): say how much with --amount \
                     (in {})",
                    target.id,
                    budget.budget,
                    budget.spent,
                    budget.unit,
                    budget.limit,
                    budget.unit
                ),
                (true, Some(amount)) => Some(smallest_units(amount, &budget.unit)?),
            }
        }
    };
    let asked = waiting.data.asked(&target.id, &waiting.request.to_string(), amount.unwrap_or(0));
    // Signed over exactly what is shown: the daemon refuses an answer to anything else. Without a key of yours it
    // goes unsigned, which a repo whose hal.yaml names owners refuses, saying why.
    let statement = approval_statement(&actor, &asked, approve, scope, reason);
    let signature = match home.existing_person_key(&actor) {
        Some(key) => Some(hal_trust::sign_statement(&key, APPROVAL_NAMESPACE, &statement).map_err(anyhow::Error::msg)?),
        None => None,
    };
    // `always`: the owner's own signed commit to hal.yaml on main, made before the answer is sent (it is checked
    // here first: a refused answer leaves main as it was).
    let policy_commit = match (scope, &signature, &waiting.data) {
        (Scope::Always, Some(signature), ApprovalData::Call(call)) => {
            let keyring = hal_trust::Keyring::load(&home)?;
            if let Err(why) =
                hal_trust::check_owner_statement(&keyring, &actor, APPROVAL_NAMESPACE, &statement, signature)
            {
                bail!("an approval for always is an owner's change of hal.yaml, and yours would be refused: {why}");
            }
            Some(commit_policy(&home, &keyring, &actor, call)?)
        }
        (Scope::Always, None, _) => {
            bail!(
                "an approval for always commits a change of hal.yaml signed with your key, and you have none HAL can use"
            )
        }
        _ => None,
    };
    drop(home);
    if !args.json {
        let word = if approve { "approving" } else { "denying" };
        match &waiting.data {
            // The whole call, escaped, as the signature covers it.
            ApprovalData::Call(call) => eprintln!(
                "{word} {} {} on thread {}",
                call.call.name,
                serde_json::to_string(&call.call.arguments).unwrap_or_default(),
                target.id
            ),
            ApprovalData::Budget(_) => eprintln!("{word} {} on thread {}", waiting.data.summary(), target.id),
        }
        if let Some((commit, name)) = policy_commit {
            let commit = commit.to_string();
            eprintln!("hal.yaml on main now has {name} act and tell (AL2) from now on: {}", &commit[..10]);
        }
    }
    let handle = remote::handle(args)?;
    let command = Command::Decide {
        actor: Some(actor.clone()),
        thread: target.branch.clone(),
        request: waiting.request.to_string(),
        approve,
        scope,
        reason: reason.to_owned(),
        amount,
        signature,
    };
    let display = remote::Display {
        steps: (!args.json).then_some(&remote::step_line as &remote::StepLine),
        text: false,
        after_prompt: false,
    };
    let (end, _) = remote::talk(handle.as_ref(), &actor, &command, &display)?;
    super::run::print_end(args, handle.as_ref(), &end)?;
    Ok(CommandEnd::Exit(remote::exit_code(end.status)))
}

/// `amount` in the smallest unit a budget's answer carries: tokens, or US cents for `usd`.
fn smallest_units(amount: f64, unit: &str) -> Result<u64> {
    let scaled = if unit == "usd" { (amount * 100.0).round() } else { amount.round() };
    if !(1.0..1e15).contains(&scaled) {
        bail!("--amount must be a positive number of {unit}");
    }
    Ok(scaled as u64)
}

/// Commit to `main`, signed with `actor`'s key, the change of `hal.yaml`'s policy that makes the tool of `call` act
/// and tell (AL2) in runs of its help from now on, at the name the rule that set AL1 named (the tool, or the plugin
/// version it runs), and return the commit and that name; refused when `main` holds changes no owner vouched for
/// (signing on top of them would vouch for them), when a rule of another help sets AL1, or when the file cannot be
/// edited for certain.
fn commit_policy(
    home: &Home,
    keyring: &hal_trust::Keyring,
    actor: &str,
    call: &hal_runner::record::CallRequest,
) -> Result<(gix::ObjectId, String)> {
    let (help, tool) = (call.help.as_str(), call.call.name.as_str());
    use hal_spec::policy::Level;
    use hal_spec::policy_edit::{Place, set_level};
    let Some(tip) = home.main_tip()? else { bail!("the repo has no main") };
    let file = |commit: gix::ObjectId| -> Result<String> {
        let bytes = home.file_at(commit, hal_store::CONFIG_FILE)?.unwrap_or_default();
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("hal.yaml on main is not UTF-8"))
    };
    let text = file(tip)?;
    let in_force = keyring.settings_from.map(file).transpose()?;
    if keyring.main_from != Some(tip) || in_force.as_ref().is_some_and(|in_force| *in_force != text) {
        bail!(
            "main holds changes no owner signed since the version in force (`hal status` lists them): review and sign \
             them first, or approve with --scope once or thread"
        );
    }
    let settings = hal_spec::Settings::parse(hal_store::CONFIG_FILE, &text)?;
    let level_in = |policy: &hal_spec::policy::Policy| {
        policy.call_level(help, tool, &call.aliases, &call.callers, Level::Autonomous)
    };
    let found = level_in(&settings.policy);
    let (level, rule, name) = (found.level, &found.rule, found.name.as_str());
    if level != Level::ApproveEach {
        bail!("hal.yaml on main no longer sets AL1 for {name} in help {help} ({rule} says {})", level.as_str());
    }
    // A rule of a help whose run started or messaged this thread holds for every thread it leads to: changing it
    // is a decision about that help, for the owner to make in hal.yaml, not by answering one call.
    if let hal_spec::policy::Rule::Help(owner_help, _) = rule
        && owner_help != help
    {
        bail!(
            "AL1 for {name} here comes from {rule}, a rule of help {owner_help}, whose run led to this thread: change \
             it in hal.yaml yourself, or approve with --scope once or thread"
        );
    }
    let edited = set_level(&text, &Place::overriding(rule), help, name, Level::ActAndTell)
        .map_err(|why| anyhow::anyhow!("hal.yaml was not changed: {why}"))?;
    // Read back: the change must be what makes the call act and tell, under every rule that names it.
    let after = hal_spec::Settings::parse(hal_store::CONFIG_FILE, &edited)?;
    let now = level_in(&after.policy);
    if now.level < Level::ActAndTell {
        bail!("hal.yaml was not changed: with {name} set to AL2, {} still sets {}", now.rule, now.level.as_str());
    }
    let Some(key) = home.existing_person_key(actor) else { bail!("you have no key HAL can sign with") };
    let message = format!(
        "policy: {name} acts and tells (AL2) in help {help}\n\nApproved always by {actor}, answering an approval \
         request (`hal approve --scope always`) for a call of {tool}; before, {rule} set AL1.\n"
    );
    let commit = home.commit_on_main_as(actor, &key, tip, hal_store::CONFIG_FILE, edited.as_bytes(), &message)?;
    Ok((commit, name.to_owned()))
}
