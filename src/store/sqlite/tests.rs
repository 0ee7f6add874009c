use super::*;
use crate::store::query;
use rust_decimal::Decimal;

use crate::config::Plan;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn row(key: &str, started: &str, cost: &str) -> Row {
    Row {
        request_id: format!("{:032x}", rand::random::<u128>()),
        started_at: at(started),
        key_name: key.into(),
        attribution: Attribution {
            tool: Tool::Codex,
            session: Some("0199a1b2-c3d4".into()),
            project: None,
        },
        requested_model: "gpt".into(),
        model: "gpt-4.1".into(),
        route: None,
        provider: "openai".into(),
        status: 200,
        outcome: Outcome::Completed,
        stream: false,
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 2,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        },
        usage_source: UsageSource::Upstream,
        pricing: Pricing::Listed,
        cost_usd: cost.parse().unwrap(),
        latency_ms: 12,
        ttft_ms: None,
    }
}

fn key(name: &str) -> StoredKey {
    StoredKey {
        name: name.into(),
        key_sha256: [7; 32],
        plan: Plan::Starter,
        rpm: Some(5),
        concurrent: None,
        daily: None,
        monthly_budget_usd: Some("12.5".parse().unwrap()),
        credits_usd: None,
        created_at: stamp(at("2026-01-01T00:00:00Z")),
        revoked_at: None,
    }
}

#[test]
fn keys_round_trip_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("izzi.db")).unwrap();
    store.create_key(&key("ci")).unwrap();
    let err = store.create_key(&key("ci")).unwrap_err().to_string();
    assert!(err.contains("`ci`"), "{err}");
    assert_eq!(store.keys().unwrap(), vec![key("ci")]);
    assert!(store.revoke_key("ci", at("2026-01-02T00:00:00Z")).unwrap());
    assert!(!store.revoke_key("ci", at("2026-01-03T00:00:00Z")).unwrap());
    let keys = store.keys().unwrap();
    assert_eq!(
        keys[0].revoked_at.as_deref(),
        Some("2026-01-02T00:00:00.000Z")
    );
}

#[test]
fn the_gateway_connection_keeps_a_small_cache_and_the_configured_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("izzi.db")).unwrap();
    let pragma = |name: &str| -> i64 {
        store
            .conn
            .pragma_query_value(None, name, |r| r.get(0))
            .unwrap()
    };
    // SQLite's default, for the CLI's connections: 2,000 KiB.
    assert_eq!(pragma("cache_size"), -2000);
    assert_eq!(pragma("synchronous"), 1); // NORMAL
    store.tune_for_gateway(Synchronous::Full).unwrap();
    assert_eq!(pragma("cache_size"), GATEWAY_CACHE_KIB);
    assert_eq!(pragma("synchronous"), 2); // FULL
    store.tune_for_gateway(Synchronous::Normal).unwrap();
    assert_eq!(pragma("synchronous"), 1);
}

#[test]
fn rows_update_accounts_and_months_roll_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("izzi.db")).unwrap();
    store
        .record(&[
            row("a", "2026-01-31T23:59:59.5Z", "0.1"),
            row("a", "2026-02-01T00:00:00Z", "0.25"),
            row("b", "2026-02-01T00:00:01Z", "1"),
        ])
        .unwrap();
    // A request that began in January and ended after the month turned.
    store
        .record(&[row("a", "2026-01-31T23:59:58Z", "0.05")])
        .unwrap();
    let accounts = store.accounts().unwrap();
    let a = &accounts["a"];
    assert_eq!(a.spent_usd.to_string(), "0.40");
    assert_eq!(a.month, "2026-02");
    assert_eq!(a.month_spent_usd.to_string(), "0.25");
    assert_eq!(accounts["b"].spent_in("2026-02").to_string(), "1");
    assert_eq!(accounts["b"].spent_in("2026-03"), Decimal::ZERO);
    let counts = store.requests_since(at("2026-02-01T00:00:00Z")).unwrap();
    assert_eq!((counts["a"], counts["b"]), (1, 1));
}

#[test]
fn a_batch_that_fails_leaves_nothing_and_the_next_one_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("izzi.db")).unwrap();
    store
        .record(&[row("a", "2026-02-01T00:00:00Z", "1")])
        .unwrap();
    // An account that cannot be read fails the batch after its rows were inserted.
    store
        .conn
        .execute(
            "UPDATE accounts SET spent_usd = 'x' WHERE key_name = 'a'",
            [],
        )
        .unwrap();
    let two = [
        row("b", "2026-02-01T00:00:01Z", "2"),
        row("a", "2026-02-01T00:00:02Z", "3"),
    ];
    assert!(store.record(&two).is_err());
    let counts = store.requests_since(at("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!((counts.get("a"), counts.get("b")), (Some(&1), None));
    assert!(store.conn.is_autocommit(), "the failed batch was left open");
    store
        .conn
        .execute(
            "UPDATE accounts SET spent_usd = '1' WHERE key_name = 'a'",
            [],
        )
        .unwrap();
    store.record(&two).unwrap();
    let accounts = store.accounts().unwrap();
    assert_eq!(accounts["a"].spent_usd.to_string(), "4");
    assert_eq!(accounts["b"].spent_usd.to_string(), "2");
}

#[test]
fn usage_sums_per_key_and_model_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("izzi.db")).unwrap();
    let rows: Vec<Row> = (0..10)
        .map(|_| row("a", "2026-03-02T10:00:00Z", "0.1"))
        .chain([row("b", "2026-03-01T10:00:00Z", "2")])
        .collect();
    store.record(&rows).unwrap();
    let now = at("2026-03-03T00:00:00Z");
    let by = [Dim::Key, Dim::Model];
    let all = query::usage(&store, &by, None, None, now).unwrap().lines;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].counts.requests, 10);
    assert_eq!(all[0].counts.cost_usd.to_string(), "1.0");
    assert_eq!(all[0].counts.input_tokens, 100);
    assert_eq!(all[0].counts.cache_read_tokens, 20);
    let since: query::Since = "2026-03-02".parse().unwrap();
    let since = query::usage(&store, &by, Some(&since), None, now)
        .unwrap()
        .lines;
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].group[&Dim::Key].as_deref(), Some("a"));
    let day: query::Since = "1d".parse().unwrap();
    let day = query::usage(&store, &[Dim::Day], Some(&day), None, now).unwrap();
    assert_eq!(day.total.requests, 10);
    let none = query::usage(&store, &by, None, Some("c"), now).unwrap();
    assert!(none.lines.is_empty());
}

#[test]
fn usage_groups_by_tool_and_session_and_old_rows_have_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("izzi.db");
    old_file(&path, 3);
    let mut store = Store::open(&path).unwrap();
    store
        .record(&[
            row("a", "2026-03-02T10:00:00Z", "0.1"),
            row("a", "2026-03-02T10:00:01Z", "0.2"),
        ])
        .unwrap();
    let now = at("2026-03-03T00:00:00Z");
    let report = query::usage(&store, &[Dim::Tool, Dim::Session], None, None, now).unwrap();
    let groups: Vec<(Option<&str>, Option<&str>, u64, String)> = report
        .lines
        .iter()
        .map(|l| {
            (
                l.group[&Dim::Tool].as_deref(),
                l.group[&Dim::Session].as_deref(),
                l.counts.requests,
                l.counts.cost_usd.to_string(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            (Some("codex"), Some("0199a1b2-c3d4"), 2, "0.3".to_owned()),
            (Some("other"), None, 1, "0.5".to_owned()),
        ]
    );
    let sessions = store.sessions(None, 10).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (
            sessions[0].turns,
            sessions[0].models.clone(),
            sessions[0].cost_usd.to_string()
        ),
        (2, vec!["gpt-4.1".to_owned()], "0.3".to_owned())
    );
    assert_eq!(sessions[0].last_at, "2026-03-02T10:00:01.000Z");
}

/// `izzi.db`'s ledger as schema 3 made it (before attribution).
const LEDGER_3: &str = "
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    request_id TEXT,
    started_at TEXT NOT NULL,
    key_name TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    stream INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    usage_source TEXT NOT NULL,
    cost_usd TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    ttft_ms INTEGER,
    pricing TEXT NOT NULL DEFAULT 'listed'
) STRICT;
CREATE INDEX ledger_started_at ON ledger (started_at);
";

/// A database file of schema `version` (1 or 3) holding one row of key `old`, cost 0.5.
fn old_file(path: &Path, version: i64) {
    let conn = Connection::open(path).unwrap();
    let ledger = if version == 1 {
        LEDGER_3.replace("    request_id TEXT,\n", "").replace(
            "    ttft_ms INTEGER,\n    pricing TEXT NOT NULL DEFAULT 'listed'\n",
            "    ttft_ms INTEGER\n",
        )
    } else {
        LEDGER_3.to_owned()
    };
    conn.execute_batch(&ledger).unwrap();
    conn.execute(
        "INSERT INTO ledger (started_at, key_name, model, provider, status, outcome,
             stream, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
             usage_source, cost_usd, latency_ms)
         VALUES ('2026-03-01T00:00:00.000Z', 'old', 'm', 'p', 200, 'completed', 0,
             1, 2, 0, 0, 'upstream', '0.5', 10)",
        [],
    )
    .unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
}

#[test]
fn a_schema_1_file_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("izzi.db");
    old_file(&path, 1);
    let mut store = Store::open(&path).unwrap();
    store
        .record(&[row("new", "2026-03-02T00:00:00Z", "0.25")])
        .unwrap();
    let rows = store.oldest(10).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1.request_id, format!("local-{}", rows[0].0));
    assert_eq!(rows[0].1.cost_usd.to_string(), "0.5");
    assert_eq!(rows[1].1, row_with_id(&rows[1].1.request_id));
}

#[test]
fn a_schema_3_file_is_migrated_its_old_rows_read_as_other_and_still_sum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("izzi.db");
    old_file(&path, 3);
    let mut store = Store::open(&path).unwrap();
    store
        .record(&[row("new", "2026-03-02T00:00:00Z", "0.25")])
        .unwrap();
    let rows = store.oldest(10).unwrap();
    let old = &rows[0].1;
    assert_eq!(old.attribution, Attribution::default());
    assert_eq!(
        (old.requested_model.as_str(), old.route.as_deref()),
        ("m", None)
    );
    assert_eq!(rows[1].1, row_with_id(&rows[1].1.request_id));
    let report = query::usage(&store, &[Dim::Key], None, None, Timestamp::now()).unwrap();
    assert_eq!(report.total.cost_usd, "0.75".parse::<Decimal>().unwrap());
    assert_eq!(report.total.requests, 2);
    let version: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// Every row the ledger holds, oldest first.
fn rows_of(store: &Store) -> Vec<Row> {
    let all = store.oldest(usize::MAX).unwrap();
    all.into_iter().map(|(_, r)| r).collect()
}

fn row_with_id(id: &str) -> Row {
    Row {
        request_id: id.to_owned(),
        ..row("new", "2026-03-02T00:00:00Z", "0.25")
    }
}

#[test]
fn spilled_rows_read_back_whole_and_are_forgotten_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("spill.db")).unwrap();
    let written: Vec<Row> = (0..5)
        .map(|i| row("a", &format!("2026-03-02T10:00:0{i}Z"), "0.1"))
        .collect();
    store.record(&written).unwrap();
    let first = store.oldest(3).unwrap();
    let rows: Vec<Row> = first.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(rows, written[..3]);
    store.forget(first[2].0).unwrap();
    assert_eq!(store.count().unwrap(), 2);
    let rest = rows_of(&store);
    assert_eq!(rest, written[3..]);
    store.forget(i64::MAX).unwrap();
    assert_eq!(store.count().unwrap(), 0);
    assert!(store.accounts().unwrap().is_empty());
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("izzi.db");
    let mut store = Store::open(&path).unwrap();
    store
        .record(&[row("a", "2026-03-02T10:00:00Z", "0.1")])
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let filter = query::Filter::default();
    assert_eq!(query::total(&store, &filter).unwrap().requests, 1);
}

#[cfg(unix)]
#[test]
fn a_new_database_and_its_wal_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("izzi.db");
    let mut store = Store::open(&path).unwrap();
    store
        .record(&[row("a", "2026-03-02T10:00:00Z", "0.1")])
        .unwrap();
    assert_eq!(crate::files::unix_mode(&path), Some(0o600));
    let wal = dir.path().join("izzi.db-wal");
    assert_eq!(crate::files::unix_mode(&wal), Some(0o600));
    // A mode the user chose is kept.
    drop(store);
    fs_err::set_permissions(&path, crate::files::unix_permissions(0o640).unwrap()).unwrap();
    drop(Store::open(&path).unwrap());
    assert_eq!(crate::files::unix_mode(&path), Some(0o640));
}

#[test]
fn stamps_are_utc_with_exactly_three_fractional_digits() {
    // The stored text order is the time order: every stamp has the same width and fields.
    for (ms, text) in [
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (1_733_570_000_120, "2024-12-07T11:13:20.120Z"),
        (253_402_207_200_000, "9999-12-30T22:00:00.000Z"),
    ] {
        let at = Timestamp::from_millisecond(ms).expect("in range");
        assert_eq!(crate::store::stamp(at), text);
        assert_eq!(
            crate::store::stamp(at),
            at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        );
    }
    // Sub-millisecond digits are cut, not rounded, as before.
    let at = Timestamp::new(1_733_570_000, 999_999_999).expect("in range");
    assert_eq!(crate::store::stamp(at), "2024-12-07T11:13:20.999Z");
}

#[test]
fn months_are_the_utc_year_and_month() {
    for (text, month) in [
        ("2026-12-31T23:59:59.999Z", "2026-12"),
        ("2027-01-01T00:00:00Z", "2027-01"),
        // A local evening that is already the next month in UTC.
        ("2026-01-31T23:30:00-05:00", "2026-02"),
        ("0999-03-01T00:00:00Z", "0999-03"),
        ("9999-12-30T22:00:00Z", "9999-12"),
    ] {
        let at = at(text);
        assert_eq!(crate::store::month(at), month, "{text}");
        assert_eq!(crate::store::stamp_month(&stamp(at)), month, "{text}");
        assert_eq!(
            crate::store::month(at),
            crate::store::utc_date(at).strftime("%Y-%m").to_string()
        );
    }
}

#[test]
fn a_batch_whose_rows_differ_in_every_label_reads_back_row_for_row() {
    // Rows sharing a label leave it bound from the row before: each row here changes some
    // labels and keeps others, text to NULL and back included, and every row must read back
    // as written.
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("izzi.db")).unwrap();
    let base = row("a", "2026-03-02T10:00:00Z", "0.1");
    let variants: [fn(&mut Row); 11] = [
        |r| r.key_name = "b".into(),
        |r| r.model = "claude-sonnet-4-5".into(),
        |r| r.provider = "anthropic".into(),
        |r| r.outcome = Outcome::ClientGone,
        |r| r.usage_source = UsageSource::Estimate,
        |r| r.pricing = Pricing::Unpriced,
        |r| r.attribution.tool = Tool::ClaudeCode,
        |r| r.attribution.session = None,
        |r| r.attribution.project = Some("izzi".into()),
        |r| r.requested_model = "sonnet".into(),
        |r| r.route = Some("cheap".into()),
    ];
    let mut written = vec![base.clone()];
    for (i, change) in variants.iter().enumerate() {
        // One label changed, then back to the base, then this one and the next together.
        let mut changed = Row {
            request_id: format!("r{i}"),
            ..base.clone()
        };
        change(&mut changed);
        written.push(changed.clone());
        written.push(Row {
            request_id: format!("r{i}-back"),
            ..base.clone()
        });
        variants[(i + 1) % variants.len()](&mut changed);
        changed.request_id = format!("r{i}-two");
        written.push(changed);
    }
    store.record(&written).unwrap();
    assert_eq!(rows_of(&store), written);
    // A second batch starts from a statement whose bindings the cache cleared.
    let next = vec![Row {
        request_id: "next".into(),
        ..written[written.len() - 1].clone()
    }];
    store.record(&next).unwrap();
    assert_eq!(store.oldest(100).unwrap().last().unwrap().1, next[0]);
}
