"""`python -m halton_api` is `halton-cloud`."""

from halton_api.cli import main

main()
