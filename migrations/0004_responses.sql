-- Stored Responses state (`store: true`): each response with the input that led to it, keyed to
-- the SHA-256 of the client key that made it. Only creates its own table, so it applies
-- whatever the migrations before it hold.
CREATE TABLE IF NOT EXISTS responses (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL,
    key_sha256 BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    bytes BIGINT NOT NULL,
    input TEXT NOT NULL,
    response TEXT NOT NULL,
    UNIQUE (key_sha256, id)
);
CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at);
