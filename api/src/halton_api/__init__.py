"""halton_api."""
