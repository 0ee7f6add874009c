//! The effective config with its secrets masked, for `izzi config check`: upstream keys
//! (`providers[].api_key`), client keys (`keys[].key`), `dashboard.admin_key` and passwords in
//! `[state]`, `[telemetry]` and `[alerts]` URLs.

use reqwest::Url;

use super::Config;

/// What a masked secret reads as.
pub(crate) const MASK: &str = "*****";

impl Config {
    /// A copy safe to print: every secret replaced by `*****`.
    pub(crate) fn masked(&self) -> Config {
        let mut config = self.clone();
        for provider in &mut config.providers {
            if provider.api_key.is_some() {
                provider.api_key = Some(MASK.to_owned());
            }
        }
        for key in &mut config.keys {
            MASK.clone_into(&mut key.key);
        }
        if config.dashboard.admin_key.is_some() {
            config.dashboard.admin_key = Some(MASK.to_owned());
        }
        for url in [
            &mut config.state.redis_url,
            &mut config.state.postgres_url,
            &mut config.telemetry.otlp_endpoint,
            &mut config.alerts.webhook_url,
        ]
        .into_iter()
        .flatten()
        {
            *url = masked_url(url);
        }
        config
    }
}

/// `url` with its password (user info, or a `password` query parameter as libpq takes it)
/// masked; an URL that does not parse is masked whole, since no one can tell where its password is.
fn masked_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return MASK.to_owned();
    };
    if parsed.password().is_some() && parsed.set_password(Some(MASK)).is_err() {
        return MASK.to_owned();
    }
    if parsed.query_pairs().any(|(name, _)| name == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if name == "password" {
                    MASK.into()
                } else {
                    value
                };
                (name.into_owned(), value.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_in_urls_and_keeps_the_rest() {
        assert_eq!(
            masked_url("postgres://izzi:s3cret@db.example:5432/izzi?sslmode=require"),
            "postgres://izzi:*****@db.example:5432/izzi?sslmode=require"
        );
        assert_eq!(
            masked_url("postgresql://db/izzi?user=izzi&password=s3cret"),
            "postgresql://db/izzi?user=izzi&password=*****"
        );
        assert_eq!(
            masked_url("rediss://:s3cret@cache:6380/0"),
            "rediss://:*****@cache:6380/0"
        );
        assert_eq!(
            masked_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(masked_url("not a url s3cret"), MASK);
    }
}
