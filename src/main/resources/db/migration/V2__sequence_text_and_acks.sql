-- Additions owned by this server. All additive: the TS server ignores these columns and tables, and
-- its INSERTs still work because every new column is nullable or has a default.

-- Per-document sequence: the last delta seq applied. Bumped under the row lock, so commit order equals
-- seq order per document (a global sequence could commit out of order and leave transient gaps).
ALTER TABLE documents ADD COLUMN IF NOT EXISTS seq BIGINT NOT NULL DEFAULT 0;

-- Text CRDT state kept apart from the field state, so text and fields of one id never overwrite each
-- other: {"state": "<serialised CRDT>", "clock": n}.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS text_state JSONB;

-- Rows written by the TS server have no seq; ours always do, and are unique per document.
ALTER TABLE deltas ADD COLUMN IF NOT EXISTS seq BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS uq_deltas_document_seq ON deltas (document_id, seq);

-- Client message ids of applied writes: a retried write is acknowledged again but applied once.
CREATE TABLE IF NOT EXISTS synckit_applied_messages (
    document_id VARCHAR(255) NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    client_id   VARCHAR(255) NOT NULL,
    message_id  VARCHAR(255) NOT NULL,
    seq         BIGINT       NOT NULL,
    applied_at  TIMESTAMPTZ  NOT NULL DEFAULT NOW(),
    PRIMARY KEY (document_id, client_id, message_id)
);
CREATE INDEX IF NOT EXISTS idx_synckit_applied_messages_applied_at ON synckit_applied_messages (applied_at);
