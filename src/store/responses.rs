//! Stored Responses state (`store: true`): each response a client key made, with the input that
//! led to it, so a later turn can continue from it (`previous_response_id`) on any provider.
//! Rows belong to the SHA-256 of the key that made them (never the key): another key finds
//! nothing. Bounded by `[responses]`: older than `max_age_s` is never read and is deleted, and
//! beyond `max_bytes` in all the oldest go first.
//!
//! Blocking, like the rest of `store`; it has its own connection (or pool), separate from the
//! ledger thread's, and the gateway calls it on blocking threads.

use std::sync::Mutex;

use anyhow::{Result, anyhow};
use jiff::{SignedDuration, Timestamp};
use rusqlite::{OptionalExtension as _, params};

use super::{Postgres, Store, default_path, int, stamp};
use crate::config::{Responses, State};

/// What a later request reads of a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kept {
    /// The response's id (`resp_…`).
    pub(crate) id: String,
    /// The SHA-256 of the client key that made it.
    pub(crate) owner: [u8; 32],
    /// The input items (a JSON array) the response answered: its own and those it continued.
    pub(crate) input: String,
    /// The response object (JSON), as the client got it (a stream's `response.completed`).
    pub(crate) response: String,
}

/// Where stored responses live: `izzi.db`, or PostgreSQL when `[state].postgres_url` is set.
pub(crate) enum ResponseStore {
    Sqlite(Mutex<Store>),
    /// Locked, as its runtime runs one call at a time.
    Postgres(Mutex<Postgres>),
}

impl std::fmt::Debug for ResponseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "ResponseStore(izzi.db)",
            Self::Postgres(_) => "ResponseStore(PostgreSQL)",
        })
    }
}

/// The oldest creation time still kept.
fn cutoff(bounds: &Responses, now: Timestamp) -> String {
    let age = SignedDuration::from_secs(int(bounds.max_age_s));
    stamp(now.checked_sub(age).unwrap_or(Timestamp::MIN))
}

const SQLITE_PUT: &str =
    "INSERT INTO responses (id, key_sha256, created_at, bytes, input, response)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (key_sha256, id) DO UPDATE SET created_at = excluded.created_at,
         bytes = excluded.bytes, input = excluded.input, response = excluded.response";
/// Deletes the oldest rows beyond `max_bytes` (the newest are kept while they fit).
const EVICT_BY_SIZE: &str = "DELETE FROM responses WHERE seq IN (
     SELECT seq FROM (SELECT seq, SUM(bytes) OVER (ORDER BY seq DESC) AS kept FROM responses) AS newest
     WHERE kept > CAST($1 AS BIGINT))";

impl ResponseStore {
    /// The store `[state]` names, with its own connection.
    pub(crate) fn open(state: &State) -> Result<Self> {
        match &state.postgres_url {
            Some(url) => Ok(Self::Postgres(Mutex::new(Postgres::new(
                url,
                state.postgres_ca_file.as_deref(),
            )?))),
            None => Ok(Self::Sqlite(Mutex::new(Store::open(&default_path()?)?))),
        }
    }

    /// Runs `call` on the locked connection.
    fn locked<S, T>(store: &Mutex<S>, call: impl FnOnce(&S) -> Result<T>) -> Result<T> {
        let store = store
            .lock()
            .map_err(|_| anyhow!("the stored responses' connection was poisoned"))?;
        call(&store)
    }

    /// Keeps `kept` (replacing one of the same key and id), then evicts what the bounds say.
    pub(crate) fn put(&self, kept: &Kept, bounds: &Responses, now: Timestamp) -> Result<()> {
        let created = stamp(now);
        let old = cutoff(bounds, now);
        let bytes = int((kept.input.len() + kept.response.len()) as u64);
        let max = int(bounds.max_bytes);
        match self {
            Self::Sqlite(store) => Self::locked(store, |store| {
                let tx = store.conn().unchecked_transaction()?;
                tx.execute(
                    SQLITE_PUT,
                    params![
                        kept.id,
                        kept.owner,
                        created,
                        bytes,
                        kept.input,
                        kept.response
                    ],
                )?;
                tx.execute("DELETE FROM responses WHERE created_at < ?1", [&old])?;
                tx.execute(EVICT_BY_SIZE, [max])?;
                Ok(tx.commit()?)
            }),
            Self::Postgres(pg) => Self::locked(pg, |pg| {
                pg.run(async {
                let mut client = pg.client().await?;
                let tx = client.transaction().await?;
                tx.execute(
                    "INSERT INTO responses (id, key_sha256, created_at, bytes, input, response)
                     VALUES ($1, $2, $3::text::timestamptz, $4, $5, $6)
                     ON CONFLICT (key_sha256, id) DO UPDATE SET created_at = excluded.created_at,
                         bytes = excluded.bytes, input = excluded.input, response = excluded.response",
                    &[&kept.id, &kept.owner.as_slice(), &created, &bytes, &kept.input, &kept.response],
                )
                .await?;
                tx.execute(
                    "DELETE FROM responses WHERE created_at < $1::text::timestamptz",
                    &[&old],
                )
                .await?;
                tx.execute(EVICT_BY_SIZE, &[&max]).await?;
                Ok(tx.commit().await?)
            })
            }),
        }
    }

    /// The response `id` that the key hashing to `owner` made, if it is still kept.
    pub(crate) fn get(
        &self,
        owner: &[u8; 32],
        id: &str,
        bounds: &Responses,
        now: Timestamp,
    ) -> Result<Option<Kept>> {
        let old = cutoff(bounds, now);
        let found = match self {
            Self::Sqlite(store) => Self::locked(store, |store| {
                Ok(store
                    .conn()
                    .query_row(
                        "SELECT input, response FROM responses
                         WHERE key_sha256 = ?1 AND id = ?2 AND created_at >= ?3",
                        params![owner, id, old],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?)
            })?,
            Self::Postgres(pg) => Self::locked(pg, |pg| {
                pg.run(async {
                    let client = pg.client().await?;
                    let row = client
                        .query_opt(
                            "SELECT input, response FROM responses
                         WHERE key_sha256 = $1 AND id = $2 AND created_at >= $3::text::timestamptz",
                            &[&owner.as_slice(), &id, &old],
                        )
                        .await?;
                    Ok(row.map(|r| (r.get(0), r.get(1))))
                })
            })?,
        };
        Ok(found.map(|(input, response)| Kept {
            id: id.to_owned(),
            owner: *owner,
            input,
            response,
        }))
    }

    /// Deletes the response `id` of the key hashing to `owner`; whether there was one.
    pub(crate) fn delete(&self, owner: &[u8; 32], id: &str) -> Result<bool> {
        let deleted = match self {
            Self::Sqlite(store) => Self::locked(store, |store| {
                Ok(store.conn().execute(
                    "DELETE FROM responses WHERE key_sha256 = ?1 AND id = ?2",
                    params![owner, id],
                )? as u64)
            })?,
            Self::Postgres(pg) => Self::locked(pg, |pg| {
                pg.run(async {
                    let client = pg.client().await?;
                    Ok(client
                        .execute(
                            "DELETE FROM responses WHERE key_sha256 = $1 AND id = $2",
                            &[&owner.as_slice(), &id],
                        )
                        .await?)
                })
            })?,
        };
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(id: &str, owner: u8, bytes: usize) -> Kept {
        Kept {
            id: id.to_owned(),
            owner: [owner; 32],
            input: "[]".to_owned(),
            response: "x".repeat(bytes),
        }
    }

    /// Rows belong to their key; the oldest go when the bytes run out or the age passes.
    #[test]
    fn owner_size_and_age_bound_what_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResponseStore::Sqlite(Mutex::new(
            Store::open(&dir.path().join("izzi.db")).unwrap(),
        ));
        let bounds = Responses {
            max_age_s: 60,
            max_bytes: 250,
        };
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();
        store.put(&kept("resp_a", 1, 98), &bounds, t0).unwrap();
        assert_eq!(
            store.get(&[1; 32], "resp_a", &bounds, t0).unwrap(),
            Some(kept("resp_a", 1, 98))
        );
        assert_eq!(
            store.get(&[2; 32], "resp_a", &bounds, t0).unwrap(),
            None,
            "another key"
        );
        store.put(&kept("resp_b", 2, 98), &bounds, at(1)).unwrap();
        store.put(&kept("resp_c", 1, 98), &bounds, at(2)).unwrap();
        // 300 bytes > 250: the oldest went.
        assert_eq!(store.get(&[1; 32], "resp_a", &bounds, at(2)).unwrap(), None);
        assert!(
            store
                .get(&[2; 32], "resp_b", &bounds, at(2))
                .unwrap()
                .is_some()
        );
        // Past the age, a row is not read even before it is deleted.
        assert_eq!(
            store.get(&[2; 32], "resp_b", &bounds, at(62)).unwrap(),
            None
        );
        assert!(!store.delete(&[2; 32], "resp_c").unwrap(), "not its key");
        assert!(store.delete(&[1; 32], "resp_c").unwrap());
        assert_eq!(store.get(&[1; 32], "resp_c", &bounds, at(2)).unwrap(), None);
    }
}
