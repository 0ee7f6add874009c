//! Where izzi keeps the user's Izzi API key: the OS keyring, or a 0600 file in `IZZI_HOME`.

use anyhow::Result;

/// The key `izzi setup` stored, if any.
pub(crate) fn stored_key() -> Result<Option<String>> {
    let path = crate::env::izzi_home()?.join("credentials");
    match fs_err::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|k| !k.is_empty())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.into()),
    }
}
