"""halton_warehouse."""
