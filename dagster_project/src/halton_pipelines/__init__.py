"""halton_pipelines."""
