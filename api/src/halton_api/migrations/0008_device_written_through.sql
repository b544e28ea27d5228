-- How far each device's rows are known to be in the warehouse: the latest started_at of a batch the API wrote
-- (or found already stored) for it. A meter sends its calls once, oldest first, so a batch that starts after
-- this mark holds no row the workspace has, and ingestion writes it without asking the warehouse first; a
-- batch reaching back to it (a re-send, a late call) is checked row by row. NULL: not known yet (a device
-- paired before this column, or one that has not synced), which is checked too. Only ever moved forward.
ALTER TABLE devices ADD COLUMN written_through timestamptz;
