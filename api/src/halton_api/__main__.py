"""`python -m halton_api` is `halton-cloud`."""

from halton_api.cloud_cli import main

main()
