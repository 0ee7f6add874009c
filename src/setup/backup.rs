//! The setup manifest and the backups it points to, in `IZZI_HOME/setup/`: for every file setup
//! changed, which tool changed it, a byte-for-byte copy of the original (or a note that setup
//! created it, and which folders), and a digest of what setup wrote. A backup is taken once,
//! before the first change, and never overwritten, so undo always returns the user's own file.
//! The folder is private (0700): backups can hold keys.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::files::{Mode, create_dirs, write_atomic};

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) tool: String,
    pub(crate) path: PathBuf,
    /// The backup's file name in `backups/`; `None` when setup created the file.
    pub(crate) backup: Option<String>,
    /// The original's Unix mode, restored with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mode: Option<u32>,
    /// Folders setup created for the file, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) created_dirs: Vec<PathBuf>,
    /// SHA-256 (hex) of what setup last wrote, to tell whether the user changed it since.
    pub(crate) written: String,
}

/// Everything setup has changed and not yet undone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    /// The endpoint setup last pointed tools at (`izzi status` checks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_url: Option<String>,
    #[serde(default)]
    pub(crate) files: Vec<Entry>,
    /// Numbers backups, so names never collide.
    #[serde(default)]
    pub(crate) next_backup: u32,
}

/// `IZZI_HOME/setup`, where the manifest and backups live.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    pub(crate) fn new(izzi_home: &Path) -> Self {
        Self {
            dir: izzi_home.join("setup"),
        }
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    fn backups(&self) -> PathBuf {
        self.dir.join("backups")
    }

    /// A backup's full path.
    pub(crate) fn backup_path(&self, name: &str) -> PathBuf {
        self.backups().join(name)
    }

    /// The manifest; empty if setup never changed a file.
    pub(crate) fn load(&self) -> Result<Manifest> {
        let path = self.manifest_path();
        match fs_err::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "`{}` is damaged ({}); izzi cannot tell what setup changed, so undo restores nothing: restore from `{}` by hand",
                    path.display(),
                    "not the JSON izzi wrote",
                    self.backups().display()
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Manifest {
                version: 1,
                ..Manifest::default()
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Writes the manifest atomically; an empty one removes the manifest and empty folders.
    pub(crate) fn save(&self, manifest: &Manifest) -> Result<()> {
        let path = self.manifest_path();
        if manifest.files.is_empty() {
            match fs_err::remove_file(&path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            }
            // Kept copies of files the user changed stay; empty folders go.
            let _ = fs_err::remove_dir(self.backups());
            let _ = fs_err::remove_dir(&self.dir);
            return Ok(());
        }
        self.ensure_dirs()?;
        let mut text = serde_json::to_string_pretty(manifest)?;
        text.push('\n');
        write_atomic(&path, text.as_bytes(), Mode::Exact(0o600))
    }

    fn ensure_dirs(&self) -> Result<()> {
        for dir in [&self.dir, &self.backups()] {
            if !dir.is_dir() {
                create_dirs(dir)?;
                if let Some(private) = crate::files::unix_permissions(0o700) {
                    fs_err::set_permissions(dir, private)?;
                }
            }
        }
        Ok(())
    }

    /// Keeps `bytes` as a new backup named after `original`; returns its name.
    pub(crate) fn keep(
        &self,
        manifest: &mut Manifest,
        original: &Path,
        suffix: &str,
        bytes: &[u8],
    ) -> Result<String> {
        self.ensure_dirs()?;
        let base = original
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy());
        // Copies kept after an earlier undo outlive the manifest that numbered them.
        let name = loop {
            manifest.next_backup += 1;
            let name = format!("{}-{base}{suffix}", manifest.next_backup);
            if !self.backup_path(&name).exists() {
                break name;
            }
        };
        write_atomic(&self.backup_path(&name), bytes, Mode::Exact(0o600))?;
        Ok(name)
    }

    /// Deletes a backup once its file is restored.
    pub(crate) fn drop_backup(&self, name: &str) -> Result<()> {
        match fs_err::remove_file(self.backup_path(name)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }
}

/// SHA-256 of `bytes`, hex.
pub(crate) fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
