"""Per-domain Dagster definitions, merged in `halton_pipelines.definitions`."""
