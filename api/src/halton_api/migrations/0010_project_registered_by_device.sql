-- Which device's batch registered each project (NULL: registered by a person, the demo, or before this
-- column), so ingestion can cap how many new projects one device registers per hour: a meter tags its calls
-- with whatever project slugs it is given, and without a cap one token could fill a workspace's project list
-- (10,005 projects in 3 s were measured). The index serves exactly that count: one device, the last hour.
ALTER TABLE projects ADD COLUMN registered_by_device uuid REFERENCES devices ON DELETE SET NULL;
CREATE INDEX projects_registered_by_device ON projects (registered_by_device, created_at)
    WHERE registered_by_device IS NOT NULL;
