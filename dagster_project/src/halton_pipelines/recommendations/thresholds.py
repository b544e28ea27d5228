"""The named thresholds every check fires on, and why each has the value it has.

They are constants, not settings: a recommendation quotes money, so what makes a check fire is part of the
product's contract (documented in this package's README) and changes with a review, not per deployment.
Token counts are the meter's: input includes cache reads and writes, output includes reasoning.
"""

from __future__ import annotations

from decimal import Decimal

# A month, as every saving is quoted: the 30-day window scaled to 30 days (the window is 30 days long, so
# a saving per month is the saving the window saw).
MONTH_DAYS = 30

# Below a dollar a month a recommendation is noise next to the ones that matter: no check quotes less.
MIN_MONTHLY_SAVING_USD = Decimal("1.00")

# How many sample requests a recommendation names (the most expensive first, then by request id).
SAMPLE_REQUESTS = 5

# --- model right-sizing --------------------------------------------------------------------------------
# A model is a right-sizing candidate when its prompts and answers are short: 90% of the prompts fit in
# 8k tokens and 90% of the answers in 1k. Short prompts with short answers are classification, extraction,
# routing and summary work the smaller sibling of the same family does well.
RIGHT_SIZE_MAX_INPUT_P90 = 8_000
RIGHT_SIZE_MAX_OUTPUT_P90 = 1_000
# No long-context need: 99% of the prompts fit in 32k tokens, and no prompt crosses either model's price tier.
RIGHT_SIZE_MAX_INPUT_P99 = 32_000
# Too few calls say nothing about a workload.
RIGHT_SIZE_MIN_REQUESTS = 100
# Confidence high from this many calls with the p90s at most half the thresholds (well inside them).
RIGHT_SIZE_HIGH_REQUESTS = 1_000

# --- prompt caching -------------------------------------------------------------------------------------
# The same request (prompt_hash: model, system, messages, tools) sent again within the providers' default
# cache lifetime (5 minutes, refreshed on each hit) would have been read from the cache. Requests within
# DUPLICATE_WINDOW_SECONDS of the previous identical one count as duplicates instead (never both).
CACHE_TTL_SECONDS = 300
# Providers cache prompts from 1,024 tokens (Anthropic Sonnet/Opus, OpenAI, Gemini implicit caching).
CACHE_MIN_PREFIX_TOKENS = 1_024
CACHE_MIN_REPEATS = 10
CACHE_HIGH_REPEATS = 100

# --- batch API ------------------------------------------------------------------------------------------
# Non-interactive: at most one call in ten streams (a person waiting on an answer streams it). Only the
# non-streamed calls are quoted, so the streamed few stay as they are.
BATCH_MAX_STREAMING_SHARE = Decimal("0.10")
BATCH_MIN_REQUESTS = 100
# Bursty: the calls come in runs, at least half within a minute of the workload's previous call (a job
# working through a list, not a person typing). Whether anyone waits on a non-streamed call cannot be seen
# in the data, so burstiness sets the confidence rather than the firing: bursty work is what waits 24 hours
# well; non-streamed calls spread out like a person's may still have someone waiting on them.
BATCH_BURST_GAP_SECONDS = 60
BATCH_MIN_BURST_SHARE = Decimal("0.5")
BATCH_HIGH_REQUESTS = 1_000

# --- duplicate requests and loops ----------------------------------------------------------------------
# An identical request within a minute of the previous one is a double send (retry logic, a double click, a
# re-render); loops come from the clusters mart (loop_min_requests calls within loop_window_seconds).
DUPLICATE_WINDOW_SECONDS = 60
DUPLICATE_MIN_REPEATS = 5

# --- long-context premium -------------------------------------------------------------------------------
# Above a price tier the whole call takes the higher rates: a few such calls a month are worth trimming.
LONG_CONTEXT_MIN_REQUESTS = 3
# High confidence when 90% of the calls above the tier are within 25% of it (a modest trim gets them under).
LONG_CONTEXT_TRIM_MARGIN = Decimal("0.25")
# Medium when the calls above the tier are at most this share of the workload (overflow, not the norm).
LONG_CONTEXT_MAX_SHARE = Decimal("0.10")

# --- failed and retried calls ---------------------------------------------------------------------------
# A failed call (status >= 400, or a stream cut off) that the provider counted input tokens for was billed
# for nothing; a retry is the same request again within RETRY_WINDOW_SECONDS.
FAILED_MIN_REQUESTS = 5
RETRY_WINDOW_SECONDS = 300
FAILED_HIGH_RETRIED_SHARE = Decimal("0.5")
