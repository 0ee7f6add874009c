//! The OS keyring (macOS Keychain, Windows Credential Manager, Secret Service on Linux) through
//! the `keyring` crate. Each call runs on a thread of its own and is abandoned after a timeout:
//! a locked collection can wait forever for an unlock prompt, and D-Bus can hang.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::{Location, Secret, Store};

pub(super) const SERVICE: &str = "izzi";
pub(super) const USER: &str = "default";

/// Reads answer quickly or not at all; a write may wait for the user to unlock the keyring.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Keyring;

impl Store for Keyring {
    fn get(&self) -> Result<Option<Secret>> {
        session_bus()?;
        match call(READ_TIMEOUT, keyring::Entry::get_password)? {
            Ok(key) => Ok(Some(Secret::new(&key)).filter(|k| !k.expose().is_empty())),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(anyhow!("{err}")),
        }
    }

    fn set(&self, key: &Secret) -> Result<()> {
        session_bus()?;
        let value = key.expose().to_owned();
        call(WRITE_TIMEOUT, move |entry| entry.set_password(&value))?
            .map_err(|err| anyhow!("it refused the key: {err}"))?;
        // Read it back: a store that accepts and forgets (a mock, a locked vault) is no store.
        match self.get()? {
            Some(stored) if stored == *key => Ok(()),
            _ => Err(anyhow!("it did not keep the key")),
        }
    }

    fn location(&self) -> Location {
        Location::Keyring
    }
}

/// Outside macOS and Windows the keyring is the Secret Service on the D-Bus session bus, which
/// zbus finds at `DBUS_SESSION_BUS_ADDRESS`, else at the socket `bus` in `XDG_RUNTIME_DIR` (or
/// `/run/user/UID`). With neither (headless machines, containers, CI) there is nothing to ask,
/// and asking anyway would start zbus's runtime threads (`async-io`, `blocking-1`), which a
/// gateway then kept for the rest of its life.
#[cfg(all(unix, not(target_os = "macos")))]
fn session_bus() -> Result<()> {
    // The same lookup as zbus's `Address::session`, string for string.
    if crate::env::session_bus_address_set() {
        return Ok(());
    }
    let dir = crate::env::xdg_runtime_dir()
        .unwrap_or_else(|| format!("/run/user/{}", rustix::process::geteuid().as_raw()));
    let socket = format!("{dir}/bus");
    if std::path::Path::new(&socket).exists() {
        Ok(())
    } else {
        Err(anyhow!(
            "no D-Bus session bus (`DBUS_SESSION_BUS_ADDRESS` is unset and `{socket}` does not exist)"
        ))
    }
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn session_bus() -> Result<()> {
    Ok(())
}

/// Runs `f` on the `izzi` entry on a separate thread; `Err` if the store cannot be opened or
/// the call does not return within `timeout`.
fn call<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send + 'static,
) -> Result<keyring::Result<T>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("keyring".to_owned())
        .spawn(move || {
            let result = keyring::Entry::new(SERVICE, USER).map(|entry| f(&entry));
            let _ = tx.send(result);
        })?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(err)) => Err(anyhow!("{err}")),
        Err(_) => Err(anyhow!("it did not answer within {} s", timeout.as_secs())),
    }
}
