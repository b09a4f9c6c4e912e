//! Making a runner: its journal, catalogue and tools, and what it reports to (observer, teller, halt switch).

use std::sync::Arc;

use super::{HaltCheck, Observer, Runner, Teller};
use crate::catalog::Catalog;
use crate::shared_home::SharedHome;
use crate::tools::Toolbox;

impl Runner {
    /// A runner over the shared home `journal` with the helps and settings of `catalog` and the tools of `toolbox`.
    pub fn new(journal: SharedHome, catalog: Arc<Catalog>, mut toolbox: Toolbox) -> Runner {
        // `helps.check` knows the tools and helps there are: it joins the tools once they are all in.
        let check = crate::help_check::HelpCheck::new(toolbox.names(), catalog.clone());
        if let Err(error) = toolbox.add(Arc::new(check)) {
            tracing::error!(%error, "helps.check is not offered");
        }
        Runner {
            journal,
            catalog,
            toolbox,
            observer: None,
            agent: crate::catalog::DEFAULT_AGENT.to_owned(),
            conversations: Arc::default(),
            halt: None,
            teller: None,
        }
    }

    /// Tell the owner through `teller` what ran at autonomy level AL2.
    pub fn with_teller(mut self, teller: Teller) -> Runner {
        self.teller = Some(teller);
        self
    }

    /// Ask `halt` before every model call and tool call; a run ends with ERROR and its reason when it answers.
    pub fn with_halt(mut self, halt: HaltCheck) -> Runner {
        self.halt = Some(halt);
        self
    }

    /// Why nothing may start now, when an owner halted HAL.
    pub(super) fn halted(&self) -> Option<String> {
        self.halt.as_ref().and_then(|halt| halt())
    }

    /// Work as the agent `name` (default: `hal`): its persona opens the system prompt, and its model or task
    /// class is used by helps that name none.
    pub fn with_agent(mut self, name: &str) -> Runner {
        name.clone_into(&mut self.agent);
        self
    }

    /// Report events to `observer`.
    pub fn with_observer(mut self, observer: Observer) -> Runner {
        self.observer = Some(observer);
        self
    }

    /// The home repo.
    pub fn journal(&self) -> &SharedHome {
        &self.journal
    }

    /// The catalogue in force.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The names of the tools a help's commands may select (`files.read`; `files` selects every `files.*`).
    pub fn tools(&self) -> Vec<String> {
        self.toolbox.names()
    }
}
