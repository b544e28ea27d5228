"""halton_meter."""
