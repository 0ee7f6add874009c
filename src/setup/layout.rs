//! Where tools keep their files on Linux, macOS and Windows, all derived from `HOME` (and the
//! variables tools honour), so tests point every lookup at a temp dir. Reads the environment only
//! through `crate::env`; finds binaries on `PATH` with `which`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::env;

/// A platform's folder layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Os {
    Linux,
    Macos,
    Windows,
}

impl Os {
    fn current() -> Self {
        if cfg!(target_os = "macos") {
            Self::Macos
        } else if cfg!(windows) {
            Self::Windows
        } else {
            Self::Linux
        }
    }
}

/// The folders setup looks in.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) os: Os,
    pub(crate) home: PathBuf,
    /// Apps' settings: `~/.config`, `~/Library/Application Support`, `%APPDATA%`.
    pub(crate) app_config: PathBuf,
    /// Per-user programs on Windows (`%LOCALAPPDATA%`); the home dir elsewhere.
    pub(crate) local_data: PathBuf,
    /// `$XDG_CONFIG_HOME` or `~/.config`, which CLI tools use on every platform.
    pub(crate) xdg_config: PathBuf,
    /// `$XDG_DATA_HOME` or `~/.local/share`.
    pub(crate) xdg_data: PathBuf,
    path: Option<std::ffi::OsString>,
    /// Asked for by `IZZI_SETUP_OS`: only `home` counts, not this machine's system folders.
    overridden: bool,
}

impl Layout {
    /// The layout of this machine, or the one `IZZI_SETUP_OS` names.
    pub(crate) fn detect() -> Result<Self> {
        let home = env::home_dir()?;
        let os = match env::var(env::IZZI_SETUP_OS).as_deref() {
            None => Os::current(),
            Some("linux") => Os::Linux,
            Some("macos") => Os::Macos,
            Some("windows") => Os::Windows,
            Some(other) => bail!(
                "`{}={other}` is not a platform; use `linux`, `macos` or `windows`",
                env::IZZI_SETUP_OS
            ),
        };
        let overridden = env::var(env::IZZI_SETUP_OS).is_some();
        Ok(Self::new(os, home, overridden, env::search_path()))
    }

    /// The layout of `os` under `home`. Only the real platform consults its own dirs (Windows'
    /// known folders); a layout asked for by name is derived from `home` alone.
    pub(crate) fn new(
        os: Os,
        home: PathBuf,
        overridden: bool,
        path: Option<std::ffi::OsString>,
    ) -> Self {
        let xdg_config = env::path_var(env::XDG_CONFIG_HOME)
            .filter(|_| os != Os::Windows)
            .unwrap_or_else(|| home.join(".config"));
        let xdg_data = env::path_var(env::XDG_DATA_HOME)
            .filter(|_| os != Os::Windows)
            .unwrap_or_else(|| home.join(".local").join("share"));
        let (app_config, local_data) = match os {
            Os::Linux => (xdg_config.clone(), home.clone()),
            Os::Macos => (
                home.join("Library").join("Application Support"),
                home.clone(),
            ),
            Os::Windows => {
                let roaming = home.join("AppData").join("Roaming");
                let local = home.join("AppData").join("Local");
                if overridden {
                    (roaming, local)
                } else {
                    (
                        dirs::config_dir().unwrap_or(roaming),
                        dirs::data_local_dir().unwrap_or(local),
                    )
                }
            }
        };
        Self {
            os,
            home,
            app_config,
            local_data,
            xdg_config,
            xdg_data,
            path,
            overridden,
        }
    }

    /// A binary on `PATH`.
    pub(crate) fn which(&self, name: &str) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        let cwd = std::env::current_dir().ok()?;
        which::which_in(name, Some(path), cwd).ok()
    }

    /// Whether this machine's own system folders (`/etc`, `/Library`) may be consulted.
    pub(crate) fn is_real(&self) -> bool {
        !self.overridden
    }

    /// A folder named by an environment variable, else `default`.
    pub(crate) fn dir_from(&self, var: &str, default: impl FnOnce(&Self) -> PathBuf) -> PathBuf {
        env::path_var(var).unwrap_or_else(|| default(self))
    }

    /// App bundles and per-user installs that show an app is installed, for each platform.
    pub(crate) fn app_paths(&self, mac_app: &str, windows_program: &str) -> Vec<PathBuf> {
        match self.os {
            Os::Macos if self.overridden => vec![self.home.join("Applications").join(mac_app)],
            Os::Macos => vec![
                Path::new("/Applications").join(mac_app),
                self.home.join("Applications").join(mac_app),
            ],
            Os::Windows => vec![self.local_data.join("Programs").join(windows_program)],
            Os::Linux => Vec::new(),
        }
    }

    /// `path` with the home dir shown as `~`, for messages.
    pub(crate) fn show(&self, path: &Path) -> String {
        match path.strip_prefix(&self.home) {
            Ok(rest) if rest.as_os_str().is_empty() => "~".to_owned(),
            Ok(rest) => format!("~/{}", rest.display()).replace('\\', "/"),
            Err(_) => path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_derives_from_home() {
        let home = PathBuf::from("/h");
        let linux = Layout::new(Os::Linux, home.clone(), true, None);
        assert_eq!(linux.app_config, linux.xdg_config);
        let mac = Layout::new(Os::Macos, home.clone(), true, None);
        assert_eq!(
            mac.app_config,
            PathBuf::from("/h/Library/Application Support")
        );
        let win = Layout::new(Os::Windows, home.clone(), true, None);
        assert_eq!(win.app_config, PathBuf::from("/h/AppData/Roaming"));
        assert_eq!(win.xdg_config, PathBuf::from("/h/.config"));
        assert_eq!(
            win.app_paths("Cursor.app", "cursor"),
            vec![PathBuf::from("/h/AppData/Local/Programs/cursor")]
        );
        assert_eq!(
            mac.show(Path::new("/h/.claude/settings.json")),
            "~/.claude/settings.json"
        );
        assert_eq!(mac.show(Path::new("/etc/x")), "/etc/x");
    }
}
