-- Fencing tokens for document ownership (issue 13). Every time an instance takes ownership of a document
-- it raises the document's epoch here, under the document row's lock, and every commit it makes as owner
-- carries that epoch: a commit whose epoch is no longer the stored one comes from a former owner and is
-- refused. A table of its own rather than a column on documents: raising an epoch must not fire the TS
-- schema's update triggers (version, updated_at) on the documents row. No foreign key: deleting a document
-- must not reset its epoch, or a former owner's epoch could become current again. The TS server ignores it.
CREATE TABLE IF NOT EXISTS synckit_owner_epochs (
    document_id VARCHAR(255) PRIMARY KEY,
    epoch       BIGINT      NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
