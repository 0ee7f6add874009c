//! `izzi setup` and `izzi setup --undo`: choosing the key and the tools (asking only on a
//! terminal without `--yes`), showing diffs, confirming, and reporting. What to change, and the
//! changing itself, live in `crate::setup`.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use dialoguer::theme::ColorfulTheme;

use crate::cli::{ServiceInstallArgs, SetupArgs};
use crate::output::{self, UsageError};
use crate::secrets::{self, Secret};
use crate::service::System;
use crate::setup::apply::{self, UndoStep};
use crate::setup::backup;
use crate::setup::{self, Ctx, Detection, Edit, Files, Layout, Target, Tool, ToolPlan, tools};

pub(crate) fn run(args: SetupArgs) -> Result<()> {
    let interactive = !args.yes && output::interactive();
    let layout = Layout::detect()?;
    if args.undo {
        return undo(&args.tools, args.dry_run, interactive, &layout);
    }
    let base = base_url(args.base_url.as_deref(), args.local)?;
    let stored = secrets::load()?;
    let (key, key_is_new) = choose_key(args.key.as_deref(), stored.as_ref(), interactive)?;
    let chosen = choose_tools(&args.tools, &layout, interactive)?;
    let target = Target {
        base: base.clone(),
        key: key.clone(),
        izzi: setup::stable_izzi(),
        izzi_home: crate::env::izzi_home()?,
    };
    let files = Files::disk();
    let ctx = Ctx::new(&layout, &target, &files);
    let plans: Vec<(&'static dyn Tool, ToolPlan)> = chosen
        .iter()
        .map(|(tool, _)| (*tool, tool.plan(&ctx)))
        .collect();
    let changes: Vec<(&'static str, &Edit)> = plans
        .iter()
        .flat_map(|(tool, plan)| plan.edits.iter().map(|edit| (tool.id(), edit)))
        .collect();

    if args.dry_run || interactive {
        for (_, edit) in &changes {
            output::line(diff(
                &layout,
                &edit.path,
                edit.before.as_deref(),
                Some(&edit.after),
                Some(&key),
            ));
        }
    }
    if args.dry_run {
        if key_is_new {
            output::line("Would store the key (dry run: nothing was written).");
        }
        report(&layout, &plans, &[], true);
        return problems_result(&plans, &[]);
    }
    if interactive
        && !changes.is_empty()
        && !dialoguer::Confirm::with_theme(&ColorfulTheme::default())
            .with_prompt("Apply these changes?")
            .default(true)
            .interact()?
    {
        output::line("Nothing changed.");
        return Ok(());
    }
    if key_is_new {
        let saved = secrets::save(&key)?;
        match saved.fallback {
            Some(reason) => output::notice(format_args!(
                "note: {reason}, so the key is stored in {}",
                saved.location
            )),
            None => output::notice(format_args!("The key is stored in {}.", saved.location)),
        }
    }
    let bar = output::progress(changes.len(), "Writing");
    let applied = apply::apply(
        &backup::Store::new(&target.izzi_home),
        &base,
        &changes,
        |_| bar.inc(1),
    )?;
    bar.finish_and_clear();
    report(&layout, &plans, &applied.written, false);
    for (path, was) in &applied.made_private {
        output::line(format_args!(
            "note: `{}` now holds the key, so izzi made it private (mode 0600; it was {was:04o}); undo gives the mode back",
            layout.show(path)
        ));
    }
    // Tools that izzi points at the local gateway need it running.
    if args.local && plans.iter().any(|(_, plan)| !plan.files.is_empty()) {
        offer_service(&args, interactive)?;
    }
    if !applied.written.is_empty() {
        output::line("Undo with `izzi setup --undo`.");
    }
    problems_result(&plans, &applied.problems)
}

/// With `--local`: installs the gateway as a service unless told not to (`--no-service`), one is
/// installed, or the user declines (asked on a terminal; `--yes` installs).
fn offer_service(args: &SetupArgs, interactive: bool) -> Result<()> {
    let manual = "start it with `izzi serve`, or keep it running with `izzi service install` (it forwards to the Izzi API with your key)";
    if args.no_service {
        output::line(format_args!("Tools use the local gateway: {manual}."));
        return Ok(());
    }
    if crate::service::Record::load(&crate::env::izzi_home()?)?.is_some() {
        output::line("Tools use the local gateway, which runs as the izzi service.");
        return Ok(());
    }
    let install = args.yes
        || interactive
            && dialoguer::Confirm::with_theme(&ColorfulTheme::default())
                .with_prompt("Keep the local gateway running as a service (starts at login, restarts after a crash)?")
                .default(true)
                .interact()?;
    if !install {
        output::line(format_args!("Tools use the local gateway: {manual}."));
        return Ok(());
    }
    let installed = super::service::install(
        &ServiceInstallArgs {
            config: None,
            port: None,
        },
        true,
        &System,
    );
    installed.context("the tools are set up, but the gateway service was not installed")
}

/// The API root tools get: `--local` → the local gateway, else `--base-url` or the hosted API,
/// without a trailing `/` or `/v1`.
fn base_url(arg: Option<&str>, local: bool) -> Result<String> {
    if local {
        let (config, _) = crate::config::Config::load(None)?;
        let host = match config.server.host {
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        return Ok(format!(
            "http://{}",
            std::net::SocketAddr::new(host, config.server.port)
        ));
    }
    let raw = arg.unwrap_or(crate::gateway::HOSTED_BASE);
    let url = reqwest::Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            UsageError(format!(
                "`{raw}` is not an http(s) URL; give `--base-url` like `https://api.izziapi.com`"
            ))
        })?;
    let text = url.as_str().trim_end_matches('/');
    Ok(text.strip_suffix("/v1").unwrap_or(text).to_owned())
}

/// The key to use, and whether it differs from the stored one.
fn choose_key(
    given: Option<&str>,
    stored: Option<&(Secret, secrets::Location)>,
    interactive: bool,
) -> Result<(Secret, bool)> {
    let key = match (given, stored) {
        (Some(given), _) => Secret::new(given),
        (None, Some((stored, _))) => return Ok((stored.clone(), false)),
        (None, None) if interactive => Secret::new(
            &dialoguer::Password::with_theme(&ColorfulTheme::default())
                .with_prompt("Izzi API key")
                .interact()?,
        ),
        (None, None) => {
            return Err(UsageError(
                "no API key: run `izzi setup --key KEY` (keys are at https://izziapi.com), or run `izzi setup` in a terminal to be asked".to_owned(),
            )
            .into());
        }
    };
    if key.expose().is_empty()
        || key
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(UsageError(
            "the API key is empty or contains spaces; pass it as `izzi setup --key KEY`".to_owned(),
        )
        .into());
    }
    let is_new = stored.is_none_or(|(s, _)| *s != key);
    Ok((key, is_new))
}

/// The tools to configure: those `--tools` names (if found), else the found ones, of which a
/// person at a terminal picks.
fn choose_tools(
    ids: &[String],
    layout: &Layout,
    interactive: bool,
) -> Result<Vec<(&'static dyn Tool, Detection)>> {
    let candidates = if ids.is_empty() {
        tools::all()
    } else {
        setup::select(ids).map_err(UsageError)?
    };
    let mut found = Vec::new();
    for tool in candidates {
        let detection = tool.detect(layout);
        if detection.found() {
            found.push((tool, detection));
        } else if !ids.is_empty() {
            output::notice(format_args!(
                "note: {} was not found on this machine; skipped",
                tool.name()
            ));
        }
    }
    if found.is_empty() {
        let known: Vec<_> = tools::all().iter().map(|t| t.id()).collect();
        output::line(format_args!(
            "No AI coding tools found. izzi can set up: {}.",
            known.join(", ")
        ));
        return Ok(found);
    }
    if interactive && ids.is_empty() {
        let items: Vec<String> = found
            .iter()
            .map(|(tool, d)| format!("{} ({})", tool.name(), d.places.join(", ")))
            .collect();
        let picked = dialoguer::MultiSelect::with_theme(&ColorfulTheme::default())
            .with_prompt("Which tools should use izzi? (space toggles, enter confirms)")
            .items(&items)
            .defaults(&vec![true; items.len()])
            .interact()?;
        found = found
            .into_iter()
            .enumerate()
            .filter(|(i, _)| picked.contains(i))
            .map(|(_, t)| t)
            .collect();
    }
    Ok(found)
}

/// A unified diff from `before` to `after` (`None`: no file), with the key masked.
fn diff(
    layout: &Layout,
    path: &Path,
    before: Option<&[u8]>,
    after: Option<&[u8]>,
    key: Option<&Secret>,
) -> String {
    let text = |bytes: Option<&[u8]>| {
        let text =
            crate::secrets::mask_secrets(&String::from_utf8_lossy(bytes.unwrap_or_default()));
        match key {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), &key.masked()),
            _ => text,
        }
    };
    let (old, new) = (text(before), text(after));
    let shown = layout.show(path);
    let old_header = if before.is_some() {
        shown.clone()
    } else {
        "/dev/null".to_owned()
    };
    let new_header = if after.is_some() {
        shown
    } else {
        "/dev/null".to_owned()
    };
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&old_header, &new_header)
        .to_string()
        .trim_end()
        .to_owned()
}

/// A line per tool (what changed, or that nothing needed to), then what to do by hand and
/// notes; errors go to stderr.
fn report(
    layout: &Layout,
    plans: &[(&'static dyn Tool, ToolPlan)],
    written: &[std::path::PathBuf],
    dry_run: bool,
) {
    for (tool, plan) in plans {
        let changed: Vec<String> = plan
            .edits
            .iter()
            .filter(|e| dry_run || written.contains(&e.path))
            .map(|e| format!("`{}`", layout.show(&e.path)))
            .collect();
        let verb = if dry_run { "would update" } else { "updated" };
        let headline = if !changed.is_empty() {
            format!("{verb} {}", changed.join(", "))
        } else if !plan.problems.is_empty() {
            "left unchanged (see the error below)".to_owned()
        } else if plan.files.is_empty() {
            "set it up by hand:".to_owned()
        } else {
            "already set up".to_owned()
        };
        output::line(format_args!("{}: {headline}", tool.name()));
        for text in &plan.manual {
            if !plan.files.is_empty() {
                output::line("  by hand:");
            }
            for line in text.lines() {
                output::line(format_args!("    {line}"));
            }
        }
        for note in &plan.notes {
            output::line(format_args!("  note: {note}"));
        }
        for problem in &plan.problems {
            output::notice(format_args!("error: {}: {problem}", tool.name()));
        }
    }
}

/// Exit 1 when a file had to be left unchanged; the messages are already out.
fn problems_result(plans: &[(&'static dyn Tool, ToolPlan)], late: &[String]) -> Result<()> {
    for problem in late {
        output::notice(format_args!("error: {problem}"));
    }
    let count = plans.iter().map(|(_, p)| p.problems.len()).sum::<usize>() + late.len();
    match count {
        0 => Ok(()),
        1 => Err(anyhow!(
            "1 file was left unchanged (see above); everything else is done"
        )),
        n => Err(anyhow!(
            "{n} files were left unchanged (see above); everything else is done"
        )),
    }
}

fn undo(ids: &[String], dry_run: bool, interactive: bool, layout: &Layout) -> Result<()> {
    if !ids.is_empty() {
        setup::select(ids).map_err(UsageError)?;
    }
    let store = backup::Store::new(&crate::env::izzi_home()?);
    let steps: Vec<UndoStep> = apply::undo_plan(&store, ids)?;
    // The service goes with the whole setup, not with one tool's files.
    let service = ids.is_empty() && super::service::installed_by_setup()?;
    if steps.is_empty() && !service {
        output::line("Nothing to undo: izzi setup has not changed any file.");
        return Ok(());
    }
    let key = secrets::load().ok().flatten().map(|(key, _)| key);
    if dry_run || interactive {
        for step in &steps {
            output::line(diff(
                layout,
                &step.path,
                step.current.as_deref(),
                step.restored.as_deref(),
                key.as_ref(),
            ));
        }
    }
    if dry_run {
        for step in &steps {
            let verb = if step.restored.is_some() {
                "restore"
            } else {
                "remove"
            };
            output::line(format_args!("would {verb} `{}`", layout.show(&step.path)));
        }
        if service {
            output::line("would stop and remove the izzi service");
        }
        return Ok(());
    }
    if interactive
        && !dialoguer::Confirm::with_theme(&ColorfulTheme::default())
            .with_prompt(if service {
                "Restore these files and remove the izzi service?"
            } else {
                "Restore these files?"
            })
            .default(true)
            .interact()?
    {
        output::line("Nothing changed.");
        return Ok(());
    }
    if service {
        super::service::uninstall(&System)?;
    }
    let done = apply::undo(&store, &steps).context("undo stopped")?;
    for (path, kept) in &done.kept {
        output::notice(format_args!(
            "note: `{}` changed after izzi setup wrote it; your version is kept in `{}`",
            layout.show(path),
            kept.display()
        ));
    }
    for path in &done.restored {
        output::line(format_args!("restored `{}`", layout.show(path)));
    }
    for path in &done.removed {
        output::line(format_args!(
            "removed `{}` (izzi setup created it)",
            layout.show(path)
        ));
    }
    Ok(())
}
