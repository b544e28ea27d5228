"""The demo workspace: its cast, generated requests and billed lines (`demo_data`), and their load into the
warehouse's raw tables (`demo_warehouse`). Here, beside the warehouse, so the API (`halton-cloud demo`) and
the pipelines (tests, benchmarks) share it without importing each other."""
