"""Optimisation recommendations: checks over the last 30 days of the marts, written to the warehouse.

- `window_usage`: what the checks read (each workload's profile and token sums, its repeated calls);
- `quoted_prices`: the shared card's prices at the window's end, and what tokens cost on it;
- `thresholds`, `siblings`: the named constants the checks fire on, and each model's cheaper sibling;
- `checks`: the checks, pure functions from usage and prices to `Recommendation`s;
- `recommendation`: the stored shape, its stable id and the baseline realised savings compare against;
- `recommendation_sets`: writing a run and reading the current set; `run`: one run end to end (the asset calls it).

The table contract (columns, how to read the current set, realised savings) is in README.md here.
"""
