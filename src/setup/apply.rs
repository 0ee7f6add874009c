//! Applying plans and undoing them, once for all tools. For each file: back up the original (or
//! note that it is new) in the manifest first, then replace the file atomically with its
//! permissions kept (a file that holds the key ends 0600); so an interrupted run leaves whole
//! files only, and undo still knows every file it touched. Undo restores byte for byte, with the
//! original mode, and removes what setup created; a file the user changed since is restored too,
//! with the user's version kept beside the backups.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Edit;
use super::backup::{Entry, Manifest, Store, digest};
use crate::files::{Mode, create_dirs, write_atomic};

/// What [`apply`] did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub(crate) written: Vec<PathBuf>,
    /// Files skipped, each a sentence.
    pub(crate) problems: Vec<String>,
    /// Files that now hold the key and were open to others before: each made private (0600),
    /// with the mode it had.
    pub(crate) made_private: Vec<(PathBuf, u32)>,
}

/// Writes each tool's edits. `progress` is called after each file.
pub(crate) fn apply(
    store: &Store,
    base_url: &str,
    changes: &[(&'static str, &Edit)],
    mut progress: impl FnMut(&Path),
) -> Result<Applied> {
    let mut manifest = store.load()?;
    let mut applied = Applied::default();
    for (tool, edit) in changes {
        match apply_one(store, &mut manifest, base_url, tool, edit) {
            Ok(was) => {
                if let Some(was) = was {
                    applied.made_private.push((edit.path.clone(), was));
                }
                applied.written.push(edit.path.clone());
            }
            Err(err) => applied.problems.push(format!("{err:#}")),
        }
        progress(&edit.path);
        pause_for_tests(applied.written.len());
    }
    Ok(applied)
}

/// Writes one edit; returns the mode the file had when writing the key into it made it private.
fn apply_one(
    store: &Store,
    manifest: &mut Manifest,
    base_url: &str,
    tool: &str,
    edit: &Edit,
) -> Result<Option<u32>> {
    // Dotfile managers link settings files; write through the link, not over it.
    let path = match fs_err::symlink_metadata(&edit.path) {
        Ok(meta) if meta.file_type().is_symlink() => fs_err::canonicalize(&edit.path)?,
        _ => edit.path.clone(),
    };
    let now = match fs_err::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err.into()),
    };
    if now != edit.before {
        anyhow::bail!(
            "`{}` changed while izzi was planning; izzi left it as it is: run `izzi setup` again",
            path.display()
        );
    }
    let written = digest(&edit.after);
    if let Some(entry) = manifest.files.iter_mut().find(|e| e.path == path) {
        entry.written = written;
    } else {
        let (backup, created_dirs) = match &edit.before {
            Some(bytes) => (Some(store.keep(manifest, &path, "", bytes)?), Vec::new()),
            None => {
                let dirs = match path.parent() {
                    Some(parent) => create_dirs(parent)?,
                    None => Vec::new(),
                };
                (None, dirs)
            }
        };
        manifest.files.push(Entry {
            tool: tool.to_owned(),
            path: path.clone(),
            backup,
            mode: crate::files::unix_mode(&path),
            created_dirs,
            written,
        });
    }
    manifest.version = 1;
    manifest.base_url = Some(base_url.to_owned());
    // The manifest knows the file before the file changes: a kill between the two leaves an
    // entry whose file is still the original, which undo handles.
    store.save(manifest)?;
    // A file that holds the key is the user's alone, whatever mode it had (undo gives that
    // mode back with the original bytes).
    let (mode, was) = if edit.secret {
        let was = crate::files::unix_mode(&path).filter(|m| *m != PRIVATE);
        (Mode::Exact(PRIVATE), was)
    } else {
        (Mode::Keep, None)
    };
    write_atomic(&path, &edit.after, mode)?;
    Ok(was)
}

/// The mode of a file that holds the key.
const PRIVATE: u32 = 0o600;

fn pause_for_tests(written: usize) {
    if crate::env::pause_after_file() == Some(written) {
        crate::output::notice(format_args!(
            "paused after {written} files ({})",
            crate::env::IZZI_TEST_PAUSE_AFTER_FILE
        ));
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// One file undo would restore or remove.
#[derive(Debug, Clone)]
pub(crate) struct UndoStep {
    entry: Entry,
    pub(crate) path: PathBuf,
    /// The file now; `None` if it is gone.
    pub(crate) current: Option<Vec<u8>>,
    /// What it becomes; `None` to remove a file setup created.
    pub(crate) restored: Option<Vec<u8>>,
    /// The user changed the file after setup wrote it.
    pub(crate) changed_since: bool,
}

/// What undo would do for the given tools (all when `tools` is empty).
pub(crate) fn undo_plan(store: &Store, tools: &[String]) -> Result<Vec<UndoStep>> {
    let manifest = store.load()?;
    let mut steps = Vec::new();
    // Newest first, so a folder setup created is empty again by the time its creator's entry
    // comes to remove it.
    for entry in manifest
        .files
        .iter()
        .rev()
        .filter(|e| tools.is_empty() || tools.contains(&e.tool))
    {
        let current = match fs_err::read(&entry.path) {
            Ok(bytes) => Some(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err.into()),
        };
        let restored = match &entry.backup {
            Some(name) => Some(fs_err::read(store.backup_path(name))?),
            None => None,
        };
        let changed_since = current
            .as_ref()
            .is_some_and(|c| digest(c) != entry.written && Some(c) != restored.as_ref());
        steps.push(UndoStep {
            entry: entry.clone(),
            path: entry.path.clone(),
            current,
            restored,
            changed_since,
        });
    }
    Ok(steps)
}

/// What [`undo`] did.
#[derive(Debug, Default)]
pub(crate) struct Undone {
    pub(crate) restored: Vec<PathBuf>,
    pub(crate) removed: Vec<PathBuf>,
    /// Files the user changed after setup: (file, where the user's version was kept).
    pub(crate) kept: Vec<(PathBuf, PathBuf)>,
}

/// Carries out `steps` from [`undo_plan`], dropping each from the manifest as it is done.
pub(crate) fn undo(store: &Store, steps: &[UndoStep]) -> Result<Undone> {
    let mut manifest = store.load()?;
    let mut done = Undone::default();
    for step in steps {
        if step.changed_since
            && let Some(current) = &step.current
        {
            let name = store.keep(&mut manifest, &step.path, ".changed", current)?;
            done.kept
                .push((step.path.clone(), store.backup_path(&name)));
        }
        match (&step.restored, &step.current) {
            (Some(original), current) => {
                if current.as_ref() != Some(original) {
                    if let Some(parent) = step.path.parent() {
                        create_dirs(parent)?;
                    }
                    let mode = step.entry.mode.map_or(Mode::Keep, Mode::Exact);
                    write_atomic(&step.path, original, mode)?;
                }
                done.restored.push(step.path.clone());
            }
            (None, current) => {
                if current.is_some() {
                    fs_err::remove_file(&step.path)?;
                }
                // Innermost first; a folder the user has since put files in stays.
                for dir in step.entry.created_dirs.iter().rev() {
                    let _ = fs_err::remove_dir(dir);
                }
                done.removed.push(step.path.clone());
            }
        }
        if let Some(name) = &step.entry.backup {
            store.drop_backup(name)?;
        }
        manifest.files.retain(|e| e != &step.entry);
        if manifest.files.is_empty() {
            manifest.base_url = None;
        }
        store.save(&manifest)?;
    }
    Ok(done)
}
