-- What people decided about the optimisation recommendations (marts.recommendations in the warehouse) and
-- which checks they silenced for which project.

-- One decision per recommendation (its id is stable across runs: a uuid5 of workspace, project, provider,
-- kind and card model). An accepted recommendation keeps a copy of the warehouse row it was accepted on:
-- realised savings compare the usage since `decided_at` with this baseline, and the pattern itself
-- disappears from later runs once it is fixed. Re-opening deletes the row (the audit log keeps it).
CREATE TABLE recommendation_decisions (
    workspace_id                    uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    recommendation_id               uuid NOT NULL,
    status                          text NOT NULL CHECK (status IN ('accepted', 'dismissed')),
    decided_by                      uuid REFERENCES users ON DELETE SET NULL,
    decided_by_label                text NOT NULL DEFAULT '',
    decided_at                      timestamptz NOT NULL DEFAULT now(),
    run_id                          uuid NOT NULL,
    kind                            text NOT NULL,
    project                         text NOT NULL,
    provider                        text NOT NULL,
    model                           text NOT NULL,
    target_model                    text NOT NULL DEFAULT '',
    title                           text NOT NULL,
    scope_models                    text[] NOT NULL,
    price_card                      text NOT NULL DEFAULT '',
    monthly_saving_usd              numeric(18, 9) NOT NULL,
    baseline_start                  date NOT NULL,
    baseline_end                    date NOT NULL,
    baseline_requests               bigint NOT NULL,
    baseline_spend_usd              numeric(18, 9) NOT NULL,
    baseline_spend_per_day_usd      numeric(18, 9) NOT NULL,
    baseline_cost_per_request_usd   numeric(18, 9) NOT NULL,
    expected_saving_per_request_usd numeric(18, 9) NOT NULL,
    realised_method                 text NOT NULL CHECK (realised_method IN ('per_request', 'per_day')),
    PRIMARY KEY (workspace_id, recommendation_id)
);
CREATE INDEX recommendation_decisions_accepted ON recommendation_decisions (workspace_id, decided_at)
    WHERE status = 'accepted';

-- A check silenced for one project (a slug as the meters send it, registered or not): its recommendations
-- on that project are hidden; the same check on other projects still shows.
CREATE TABLE check_suppressions (
    workspace_id        uuid NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    kind                text NOT NULL,
    project             text NOT NULL,
    suppressed_by       uuid REFERENCES users ON DELETE SET NULL,
    suppressed_by_label text NOT NULL DEFAULT '',
    suppressed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, kind, project)
);
