//! Conversations kept in memory between runs: the next run on a thread continues from memory instead of reading
//! its steps again, as long as the thread's tip is the one the conversation is current at.

use gix::ObjectId;

use super::{CACHED_CONVERSATIONS, Runner};
use crate::conversation::Conversation;

impl Runner {
    /// Forget the conversation kept for `branch`: its thread changed in a way the runner did not see (a commit
    /// pushed in the middle of a run), so the next run reads it back from the commits.
    pub fn forget(&self, branch: &str) {
        let mut cache = self.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|(b, _, _)| b != branch);
    }

    /// The cached conversation of `branch`, if it is current at `tip`.
    pub(super) fn cached_conversation(&self, branch: &str, tip: Option<ObjectId>) -> Option<Conversation> {
        let mut cache = self.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let position = cache.iter().position(|(b, _, _)| b == branch)?;
        let (_, cached_tip, conversation) = cache.remove(position);
        (Some(cached_tip) == tip).then_some(conversation)
    }

    pub(super) fn cache_conversation(&self, branch: &str, tip: ObjectId, conversation: Conversation) {
        let mut cache = self.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|(b, _, _)| b != branch);
        if cache.len() >= CACHED_CONVERSATIONS {
            cache.remove(0);
        }
        cache.push((branch.to_owned(), tip, conversation));
    }

    /// Which people's steps HAL answers, by the `hal.yaml` in force and the repo's remotes now.
    pub(super) fn admit(&self, home: &hal_store::Home) -> crate::plan::Admit {
        let settings = &self.catalog.settings;
        crate::plan::Admit::for_repo(home, &settings.trust).with_members(settings.members.as_ref())
    }
}
