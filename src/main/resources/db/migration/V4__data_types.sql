-- Counter, set and rich-text format state (issue 14): what the SDK's SyncCounter, SyncSet and RichText
-- operations add up to, as {"counter":{"positive":{client:n},"negative":{client:n}},"set":[...],"formats":[...]}.
-- A column beside text_state: written in the same statement as the fields and text of a write, under the
-- same row lock, so these merges follow the document's one write order. Upstream servers keep nothing here.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS data_types JSONB;
