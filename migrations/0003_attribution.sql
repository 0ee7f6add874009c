-- Who sent each request, as its headers tell: the client tool (`claude-code`, `codex`, …,
-- `other`), the agent session and the project (both optional); the model as the client named it
-- (an alias included; `model` stays the one served) and the routing rule that chose the provider
-- (NULL when none did). Rows written before this read as tool `other`, no session, and asked for
-- the model served. Never prompt or answer text.
ALTER TABLE ledger ADD COLUMN tool TEXT NOT NULL DEFAULT 'other';
ALTER TABLE ledger ADD COLUMN session TEXT;
ALTER TABLE ledger ADD COLUMN project TEXT;
ALTER TABLE ledger ADD COLUMN requested_model TEXT;
ALTER TABLE ledger ADD COLUMN route TEXT;
CREATE INDEX ledger_session ON ledger (session, started_at);
