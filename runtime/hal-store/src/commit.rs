//! Writing commit objects, every one signed: HAL's key on this machine (made at its first use) signs what HAL
//! writes; `hal init` passes the person's key for what makes them the first owner.

use gix::ObjectId;

use crate::error::{GixContext, IoContext};
use crate::{Home, Result};

/// Which key signs HAL's commits.
pub(crate) enum Signing {
    /// HAL's key on this machine, read (or made) at the first commit.
    MachineKey(std::sync::OnceLock<std::sync::Arc<crate::keys::Signer>>),
    /// A key given by whoever opened the repo.
    Given(std::sync::Arc<crate::keys::Signer>),
    /// None: commits are unsigned (only for measuring what signing costs).
    Unsigned,
}

impl Home {
    /// The same home repo, signing HAL's commits with `key` (`None`: unsigned, which only measurements want)
    /// instead of HAL's key on this machine.
    pub fn with_hal_key(mut self, key: Option<crate::keys::Signer>) -> Home {
        self.signing = std::sync::Arc::new(match key {
            Some(key) => Signing::Given(std::sync::Arc::new(key)),
            None => Signing::Unsigned,
        });
        self
    }

    /// The key HAL signs its commits with: by default HAL's key on this machine, made at its first use.
    pub fn hal_key(&self) -> Result<Option<std::sync::Arc<crate::keys::Signer>>> {
        match &*self.signing {
            Signing::Given(key) => Ok(Some(key.clone())),
            Signing::Unsigned => Ok(None),
            Signing::MachineKey(cell) => {
                if let Some(key) = cell.get() {
                    return Ok(Some(key.clone()));
                }
                let path = crate::keys::keys_dir()?.join(crate::keys::HAL_KEY_FILE);
                let key = crate::keys::load_or_create(&path, &format!("hal@{}", crate::keys::hostname()))?;
                let key = crate::keys::Signer::new(key)?;
                Ok(Some(cell.get_or_init(|| std::sync::Arc::new(key)).clone()))
            }
        }
    }

    /// Write a commit object.
    pub(crate) fn write_commit(
        &self,
        tree: ObjectId,
        parents: Vec<ObjectId>,
        signature: &gix::actor::Signature,
        message: &str,
    ) -> Result<ObjectId> {
        self.write_commit_with_data(tree, parents, signature, message, None)
    }

    /// [`Home::write_commit`] with a step's machine data in the commit's `hal-data` header (one line).
    pub(crate) fn write_commit_with_data(
        &self,
        tree: ObjectId,
        parents: Vec<ObjectId>,
        signature: &gix::actor::Signature,
        message: &str,
        data: Option<&str>,
    ) -> Result<ObjectId> {
        let key = self.hal_key()?;
        self.write_signed_commit(tree, parents, signature, message, data, key.as_deref())
    }

    /// Write a commit object signed by `key` (unsigned when `None`), with `data` in its `hal-data` header.
    pub(crate) fn write_signed_commit(
        &self,
        tree: ObjectId,
        parents: Vec<ObjectId>,
        signature: &gix::actor::Signature,
        message: &str,
        data: Option<&str>,
        key: Option<&crate::keys::Signer>,
    ) -> Result<ObjectId> {
        let extra_headers = match data {
            Some(data) => vec![(crate::step::DATA_HEADER.into(), data.into())],
            None => Vec::new(),
        };
        let mut commit = gix::objs::Commit {
            tree,
            parents: parents.into(),
            author: signature.clone(),
            committer: signature.clone(),
            encoding: None,
            message: message.into(),
            extra_headers,
        };
        if let Some(key) = key {
            // What git signs: the object as it is without the signature header, which goes last (where git puts it).
            let mut payload = Vec::with_capacity(512 + message.len());
            gix::objs::WriteTo::write_to(&commit, &mut payload).io_context(|| "encoding a commit".to_owned())?;
            let armored = crate::keys::sign(key, &payload)?;
            commit.extra_headers.push((crate::keys::SIGNATURE_HEADER.into(), armored.into()));
        }
        Ok(self.repo().write_object(&commit).git_context(|| "writing a commit".to_owned())?.detach())
    }
}
