//! `izzi setup`: find the AI coding tools, plan the smallest change that points each at the
//! endpoint, and apply or undo it. Each tool lives in `tools/<tool>.rs` behind [`Tool`], whose
//! `plan` only reads: it maps current file contents to new contents, or to text the user must
//! paste. `apply` and `backup` write, once for all tools: a backup before the first change, an
//! atomic write, and a manifest in `IZZI_HOME` so undo restores byte for byte. Never prompts or
//! prints: `commands` does that.

pub(crate) mod apply;
pub(crate) mod backup;
pub(crate) mod edit;
mod editors;
mod layout;
mod processes;
pub(crate) mod templates;
pub(crate) mod tools;

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(crate) use layout::Layout;

use crate::secrets::Secret;
use edit::{EditError, Format};
use templates::{Template, Vars};

/// Where tools should send requests, and how they get the key.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The API root without `/v1` (Anthropic clients append `/v1/messages`).
    pub(crate) base: String,
    pub(crate) key: Secret,
    /// This `izzi` binary, when it sits somewhere stable enough for tools to run
    /// `izzi key print`; `None` when it runs from a temporary place (an npx cache).
    pub(crate) izzi: Option<PathBuf>,
    /// Where the files setup creates for itself live (`IZZI_HOME`).
    pub(crate) izzi_home: PathBuf,
}

impl Target {
    /// The OpenAI-style base (`…/v1`).
    pub(crate) fn openai_base(&self) -> String {
        format!("{}/v1", self.base)
    }

    /// Whether the base is this machine or a private network, which tools whose requests come
    /// from a vendor's cloud (Cursor) cannot reach.
    pub(crate) fn is_private(&self) -> bool {
        let host = reqwest::Url::parse(&self.base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host.strip_suffix(".local").is_some()
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
                std::net::IpAddr::V4(v4) => {
                    v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
                }
                std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
            })
    }

    /// The command a tool runs to get the key: run by `/bin/sh`, or by `cmd` on Windows.
    fn key_command(&self) -> Option<String> {
        self.izzi_command("key print")
    }

    /// This `izzi` running `args`, as a shell runs it (`/bin/sh`, or `cmd` on Windows).
    fn izzi_command(&self, args: &str) -> Option<String> {
        let exe = self.izzi.as_ref()?.display().to_string();
        let plain = exe
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/\\:._-+".contains(c));
        let quoted = if plain {
            exe
        } else if cfg!(windows) {
            format!("\"{exe}\"")
        } else {
            format!("'{}'", exe.replace('\'', r"'\''"))
        };
        Some(format!("{quoted} {args}"))
    }

    fn vars(&self) -> Vars {
        let public = if self.is_private() {
            format!("{}/v1", crate::gateway::HOSTED_BASE)
        } else {
            self.openai_base()
        };
        let vars = Vars::default()
            .with("base_url", &self.base)
            .with("openai_base_url", self.openai_base())
            .with("public_openai_base_url", public)
            .with("key", self.key.expose())
            .with(
                "roo_import",
                self.izzi_home
                    .join("roo-code-settings.json")
                    .display()
                    .to_string(),
            );
        match (
            &self.izzi,
            self.key_command(),
            self.izzi_command("statusline"),
        ) {
            (Some(izzi), Some(command), Some(statusline)) => vars
                .with("izzi", izzi.display().to_string())
                .with("key_command", command)
                .with("statusline_command", statusline),
            _ => vars,
        }
    }
}

/// This `izzi` binary, if tools can rely on finding it there later: not when it runs from an
/// npx cache or a temp dir, which get cleaned.
pub(crate) fn stable_izzi() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = fs_err::canonicalize(&exe).unwrap_or(exe);
    let temp = std::env::temp_dir();
    let temp = fs_err::canonicalize(&temp).unwrap_or(temp);
    let ephemeral = exe.starts_with(&temp) || exe.components().any(|c| c.as_os_str() == "_npx");
    (!ephemeral).then_some(exe)
}

/// What detection found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Detection {
    /// Binaries, folders and extensions that show the tool is installed.
    pub(crate) places: Vec<String>,
}

impl Detection {
    pub(crate) fn found(&self) -> bool {
        !self.places.is_empty()
    }
}

/// One file's planned change.
#[derive(Debug, Clone)]
pub(crate) struct Edit {
    pub(crate) path: PathBuf,
    /// The file's bytes now; `None` if setup creates it.
    pub(crate) before: Option<Vec<u8>>,
    pub(crate) after: Vec<u8>,
    /// Holds the key: the file ends with mode 0600 (new or not), and diffs mask the key.
    pub(crate) secret: bool,
}

/// What setup will do for one tool.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolPlan {
    pub(crate) edits: Vec<Edit>,
    /// Steps the user must take by hand (text to paste, and where).
    pub(crate) manual: Vec<String>,
    /// Things worth knowing (why a step is manual, a setting that overrides izzi's).
    pub(crate) notes: Vec<String>,
    /// Files left untouched because izzi cannot edit them safely, each a sentence.
    pub(crate) problems: Vec<String>,
    /// Files this tool looked at, changed or not (for `status`).
    pub(crate) files: Vec<PathBuf>,
}

/// Reads files for planning, each once; tests give contents instead of a disk.
#[derive(Debug, Default)]
pub(crate) struct Files {
    memory: Option<HashMap<PathBuf, Vec<u8>>>,
    cache: RefCell<HashMap<PathBuf, Option<Vec<u8>>>>,
}

impl Files {
    /// Files on disk.
    pub(crate) fn disk() -> Self {
        Self::default()
    }

    /// Files given in memory; all others do not exist.
    #[cfg(test)]
    pub(crate) fn memory(files: HashMap<PathBuf, Vec<u8>>) -> Self {
        Self {
            memory: Some(files),
            cache: RefCell::default(),
        }
    }

    /// The file's bytes, `None` if it does not exist.
    pub(crate) fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        if let Some(memory) = &self.memory {
            return Ok(memory.get(path).cloned());
        }
        if let Some(cached) = self.cache.borrow().get(path) {
            return Ok(cached.clone());
        }
        let bytes = match fs_err::read(path) {
            Ok(bytes) => Some(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        self.cache
            .borrow_mut()
            .insert(path.to_path_buf(), bytes.clone());
        Ok(bytes)
    }
}

/// What a tool's `plan` sees.
pub(crate) struct Ctx<'a> {
    pub(crate) layout: &'a Layout,
    pub(crate) target: &'a Target,
    pub(crate) files: &'a Files,
    /// Running programs, listed once on first use.
    processes: OnceCell<Option<Vec<processes::Process>>>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(layout: &'a Layout, target: &'a Target, files: &'a Files) -> Self {
        Self {
            layout,
            target,
            files,
            processes: OnceCell::new(),
        }
    }

    /// Running processes, or `None` if they cannot be listed.
    fn processes(&self) -> Option<Vec<processes::Process>> {
        self.processes.get_or_init(processes::list).clone()
    }
}

/// One AI tool izzi can configure.
pub(crate) trait Tool: Sync {
    /// The `--tools` id: `claude-code`, `cursor`, …
    fn id(&self) -> &'static str;
    /// The name users know.
    fn name(&self) -> &'static str;
    /// Whether and where the tool is installed.
    fn detect(&self, layout: &Layout) -> Detection;
    /// The change that points the tool at `ctx.target`. Reads files; never writes.
    fn plan(&self, ctx: &Ctx<'_>) -> ToolPlan;
}

impl ToolPlan {
    /// Plans merging a template into `path`; records an edit, nothing (already so) or a problem.
    fn patch(
        &mut self,
        ctx: &Ctx<'_>,
        path: &Path,
        format: Format,
        template: Template,
        secret: bool,
    ) {
        self.patch_with(ctx, path, format, template, &ctx.target.vars(), secret);
    }

    fn patch_with(
        &mut self,
        ctx: &Ctx<'_>,
        path: &Path,
        format: Format,
        template: Template,
        vars: &Vars,
        secret: bool,
    ) {
        if !self.files.iter().any(|f| f == path) {
            self.files.push(path.to_path_buf());
        }
        let shown = ctx.layout.show(path);
        // A second template for the same file builds on the first one's result.
        let earlier = self.edits.iter().position(|e| e.path == path);
        let before = match earlier {
            Some(i) => Some(self.edits[i].after.clone()),
            None => match ctx.files.read(path) {
                Ok(before) => before,
                Err(err) => {
                    self.problems.push(format!(
                        "cannot read `{shown}` ({err}); izzi left it unchanged"
                    ));
                    return;
                }
            },
        };
        let edited = match format {
            Format::Toml => templates::toml(template, vars)
                .map_err(|err| format!("{err:#}"))
                .and_then(|patch| {
                    edit::toml(before.as_deref(), &patch).map_err(|e| describe(&shown, &e))
                }),
            Format::Json | Format::Jsonc => templates::json(template, vars)
                .map_err(|err| format!("{err:#}"))
                .and_then(|patch| {
                    edit::json(before.as_deref(), format, &patch).map_err(|e| describe(&shown, &e))
                }),
        };
        match (edited, earlier) {
            (Ok(after), Some(i)) => {
                self.edits[i].after = after;
                self.edits[i].secret |= secret;
            }
            (Ok(after), None) if before.as_deref() == Some(after.as_slice()) => {}
            (Ok(after), None) => self.edits.push(Edit {
                path: path.to_path_buf(),
                before,
                after,
                secret,
            }),
            (Err(problem), Some(i)) => {
                // One file, one verdict: a file izzi cannot fully edit is not edited at all.
                self.edits.remove(i);
                self.problems.push(problem);
            }
            (Err(problem), None) => self.problems.push(problem),
        }
    }
}

fn describe(shown: &str, err: &EditError) -> String {
    match err {
        EditError::Parse(what) => format!(
            "`{shown}` is not valid {what}; izzi left it unchanged: fix it and run `izzi setup` again"
        ),
        EditError::Shape(what) => format!(
            "in `{shown}`, {what}; izzi left the file unchanged: fix it and run `izzi setup` again"
        ),
    }
}

/// The tools a `--tools` list names, in registry order; `Err` names an unknown id.
pub(crate) fn select(ids: &[String]) -> Result<Vec<&'static dyn Tool>, String> {
    let all = tools::all();
    for id in ids {
        if !all.iter().any(|t| t.id() == id) {
            let known: Vec<_> = all.iter().map(|t| t.id()).collect();
            return Err(format!(
                "unknown tool `{id}`; known tools: {}",
                known.join(", ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|t| ids.iter().any(|id| id == t.id()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_commands_survive_the_shell() {
        let target = |exe: &str| Target {
            base: String::new(),
            key: Secret::new(""),
            izzi: Some(PathBuf::from(exe)),
            izzi_home: PathBuf::new(),
        };
        assert_eq!(
            target("/usr/local/bin/izzi").key_command().as_deref(),
            Some("/usr/local/bin/izzi key print")
        );
        if cfg!(unix) {
            assert_eq!(
                target("/Users/a b/it's/izzi").key_command().as_deref(),
                Some(r"'/Users/a b/it'\''s/izzi' key print")
            );
        }
    }
}
