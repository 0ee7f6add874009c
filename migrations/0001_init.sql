-- izzi's shared state in PostgreSQL: the same tables as izzi.db (SQLite), with PostgreSQL's
-- types for money (NUMERIC, exact) and times (TIMESTAMPTZ). Applied by izzi at start, once,
-- under an advisory lock, and recorded in izzi_migrations.

CREATE TABLE keys (
    name TEXT PRIMARY KEY,
    key_sha256 BYTEA NOT NULL UNIQUE,
    plan TEXT NOT NULL,
    rpm BIGINT,
    concurrent BIGINT,
    daily BIGINT,
    monthly_budget_usd NUMERIC,
    credits_usd NUMERIC,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- Running totals per key name (config keys too), updated in the transaction that adds the rows.
CREATE TABLE accounts (
    key_name TEXT PRIMARY KEY,
    spent_usd NUMERIC NOT NULL,
    month TEXT NOT NULL,
    month_spent_usd NUMERIC NOT NULL
);

-- One row per admitted request, written when it ended. `request_id` is unique, so a row that
-- reaches the table twice (copied from an instance's spill file after a PostgreSQL outage) is
-- kept once.
CREATE TABLE ledger (
    id BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    started_at TIMESTAMPTZ NOT NULL,
    key_name TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    stream BOOLEAN NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    usage_source TEXT NOT NULL,
    cost_usd NUMERIC NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttft_ms BIGINT
);
CREATE INDEX ledger_started_at ON ledger (started_at);
CREATE INDEX ledger_key_started_at ON ledger (key_name, started_at);
