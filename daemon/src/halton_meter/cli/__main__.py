"""``python -m halton_meter.cli``: how the daemon re-launches itself detached, and how tests run it."""

from halton_meter.cli import main

main()
