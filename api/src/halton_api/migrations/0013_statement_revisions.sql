-- Every version of a pasted statement: the first paste and each correction add a revision; `billing_statements`
-- keeps the one in force (what the snapshot copies to the warehouse). A correction never loses what was
-- there before, so a reader can see what the reconciliation compared with at any time.
CREATE TABLE billing_statement_revisions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    statement_id uuid NOT NULL REFERENCES billing_statements ON DELETE CASCADE,
    amount       numeric(18, 9) NOT NULL CHECK (amount >= 0),
    currency     text NOT NULL,
    note         text NOT NULL,
    entered_by   uuid REFERENCES users ON DELETE SET NULL,
    entered_at   timestamptz NOT NULL
);
CREATE INDEX billing_statement_revisions_statement ON billing_statement_revisions (statement_id, id);

-- Statements pasted before revisions were kept: their current version is their first known one.
INSERT INTO billing_statement_revisions (statement_id, amount, currency, note, entered_by, entered_at)
SELECT id, amount, currency, note, entered_by, entered_at FROM billing_statements;
