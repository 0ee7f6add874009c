-- Rows say where their prices came from: `listed` (the model's own), `default` (`[default_price]`)
-- or `unpriced` (no price known; cost 0). Rows written before this had a listed price.
ALTER TABLE ledger ADD COLUMN pricing TEXT NOT NULL DEFAULT 'listed';
