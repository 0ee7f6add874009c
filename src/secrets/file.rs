//! The file credential store: `IZZI_HOME/credentials`, one line, mode 0600, written atomically.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::{Location, Secret, Store};
use crate::files::{Mode, write_atomic};

pub(super) struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub(super) fn new() -> Result<Self> {
        Ok(Self {
            path: crate::env::izzi_home()?.join("credentials"),
        })
    }

    /// Deletes the file, if there is one.
    pub(super) fn remove(&self) -> Result<()> {
        match fs_err::remove_file(&self.path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }
}

impl Store for FileStore {
    fn get(&self) -> Result<Option<Secret>> {
        match fs_err::read_to_string(&self.path) {
            Ok(text) => Ok(Some(Secret::new(&text)).filter(|k| !k.expose().is_empty())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    fn set(&self, key: &Secret) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::files::create_dirs(dir)?;
        }
        write_atomic(
            &self.path,
            format!("{}\n", key.expose()).as_bytes(),
            Mode::Exact(0o600),
        )
        .with_context(|| format!("cannot store the key in `{}`", self.path.display()))
    }

    fn location(&self) -> Location {
        Location::File(self.path.clone())
    }
}
