"""Generate the price catalogue (daemon/src/halton_meter/catalogue/rates.json) from the maintained sources.

Sources: genai-prices 0.2.x (primary; its data ships as Python inside the package, so this script runs
where that package is installed) and LiteLLM's price map (second; ``model_prices_and_context_window``
JSON, read straight out of the litellm wheel without installing it). Neither joins the workspace lock:
genai-prices 0.2.x needs h11 0.16, which mitmproxy 11.0.2 forbids. Runs on Python 3.11 or newer.

Usage, from the repository root::

    pip download --no-deps litellm -d /tmp/litellm          # any recent version; only its JSON is read
    uvx --python 3.11 --from 'genai-prices==0.2.*' python scripts/prices/generate.py \\
        --litellm /tmp/litellm/litellm-*.whl

It writes the catalogue (``--dry-run``: only reports), after checking it with the meter's own
validator, and prints: model counts per provider and source, the diff against the committed
catalogue (models added / removed, every changed value old -> new), every disagreement between the
sources with the rule that decided it (``RULES`` below), and what neither source can express per token.
Exit status: 0 written (or dry run); 1 refused by the validator, or a source missing, too old or in a
shape the generator does not know (the message says which); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import zipfile
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "daemon" / "src" / "halton_meter" / "catalogue" / "rates.json"
sys.path.insert(0, str(REPO / "daemon" / "src"))
# The meter's validator and matcher are pure Python: the file is checked exactly as the meter will.
from halton_meter.catalogue.diff import diff_catalogues  # noqa: E402
from halton_meter.catalogue.load import parse_match  # noqa: E402
from halton_meter.catalogue.validate import CatalogueError, validate_catalogue  # noqa: E402

RULES = {
    "R1": "genai-prices wins on every rate it states; a different LiteLLM rate is reported, not used",
    "R2": "LiteLLM fills a model genai-prices lacks (model and entries marked 'litellm <version>')",
    "R3": "LiteLLM fills a mode (batch/flex/priority) genai-prices has no entry for on a model it knows",
    "R4": "LiteLLM fills regional multipliers (genai-prices has none); conflicting LiteLLM values: none kept",
    "R5": "a size tier only LiteLLM has is reported, not used (the beta it priced may be retired)",
    "R6": "a rule the provider publishes that no source carries per model (ANTHROPIC_US_ONLY) wins",
    "R7": "a size tier the provider publishes that no source carries (PUBLISHED_TIERS) is added",
}

# R6. Anthropic: "US-only inference (inference_geo: us) is priced at 1.1x for Claude Opus 4.6,
# Sonnet 4.6 and later models, on every token kind". LiteLLM carries it for some of those models only.
ANTHROPIC_US_ONLY = "1.1"
ANTHROPIC_US_ONLY_SOURCE = "published rule: https://platform.claude.com/docs/en/about-claude/pricing"
ANTHROPIC_US_ONLY_SINCE = (4, 6)
_CLAUDE_VERSION = re.compile(r"claude-[a-z]+-(\d+)(?:-(\d)(?:-|$)|$)")

# R7. Anthropic: Claude Sonnet 4 with the 1M-context beta, "prompts over 200K tokens are charged at
# long-context rates: $6 / MTok input, $22.50 / MTok output" (2x every input-side rate, 1.5x output), for the
# whole request. Neither source carries the tier for Sonnet 4 (both do for Sonnet 4.5).
PUBLISHED_TIERS = {
    ("anthropic", "claude-sonnet-4-0"): (200_000, Decimal(2), Decimal("1.5")),
}
PUBLISHED_TIERS_SOURCE = (
    "published rule: https://platform.claude.com/docs/en/build-with-claude/context-windows"
)

# genai-prices provider id -> ours; LiteLLM litellm_provider -> ours.
GENAI_PROVIDERS = {"anthropic": "anthropic", "openai": "openai", "google": "gemini", "x-ai": "xai"}
LITELLM_PROVIDERS = {"anthropic": "anthropic", "openai": "openai", "gemini": "gemini", "xai": "xai"}

GENAI_RATES = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write_5m",
    "cache_write_1h_mtok": "cache_write_1h",
    "input_audio_mtok": "input_audio",
    "output_audio_mtok": "output_audio",
    "cache_audio_read_mtok": "cache_read_audio",
    "input_image_mtok": "input_image",
    "output_image_mtok": "output_image",
    "cache_image_read_mtok": "cache_read_image",
    "input_video_mtok": "input_video",
    "output_video_mtok": "output_video",
}
GENAI_FEES = {
    "web_searches_kcount": "web_search",
    "storage_searches_kcount": "file_search",
    "input_text_messages_kcount": "text_message",
}
GENAI_MODES = {
    ("processing", "batch"): "batch",
    ("service_tier", "flex"): "flex",
    ("service_tier", "priority"): "priority",
    ("service_tier", "fast"): "fast",
    ("speed", "fast"): "fast",
    ("service_tier", "ultrafast"): "ultrafast",
}
# genai-prices marks the standard tier explicitly with an empty variant: nothing to carry.
GENAI_STANDARD_WHEN = ("service_tier", "default")

# LiteLLM keys are USD per token: <rate>[_above_<N>k_tokens][_<mode>].
LITELLM_RATES = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write_5m",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "input_cost_per_audio_token": "input_audio",
    "output_cost_per_audio_token": "output_audio",
    "cache_read_input_audio_token_cost": "cache_read_audio",
    "input_cost_per_image_token": "input_image",
    "output_cost_per_image_token": "output_image",
    "cache_read_input_image_token_cost": "cache_read_image",
    "input_cost_per_video_token": "input_video",
    "output_cost_per_video_token": "output_video",
}
LITELLM_MODES = {"batches": "batch", "flex": "flex", "priority": "priority"}
_LITELLM_TAIL = re.compile(r"(?:_above_(?P<k>\d+)k_tokens)?(?:_(?P<mode>batches|flex|priority))?")
LITELLM_REGION_KEYS = {
    "regional_processing_uplift_multiplier_us": "us",
    "regional_processing_uplift_multiplier_eu": "eu",
}
REGIONS = ("us", "eu")
COMPARED_MODES = ("batch", "flex", "priority")
MTOK = Decimal(1_000_000)
MIN_GENAI_PRICES = (0, 2)


def amount(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros."""
    return format(value.normalize(), "f")


def per_mtok(per_token: float) -> str:
    # repr() is the shortest string that round-trips the float, so 3.75e-06 becomes exactly 3.75.
    return amount(Decimal(repr(per_token)) * MTOK)


# ---------------------------------------------------------------- genai-prices (primary)


def read_genai() -> tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(version, our models in genai-prices order, the models left out, what was left out and why)."""
    try:
        import genai_prices
        from genai_prices import data
    except ImportError:
        sys.exit(
            "genai-prices is not installed here: run this with uvx --from 'genai-prices==0.2.*' (see --help)"
        )
    version = genai_prices.__version__
    if tuple(int(part) for part in version.split(".")[:2]) < MIN_GENAI_PRICES:
        # The workspace lock holds 0.0.61: running there would silently write older prices.
        sys.exit(f"genai-prices {version} is too old (need 0.2 or newer): run this with uvx (see --help)")
    source = f"genai-prices {version}"
    models: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    left_out: list[str] = []
    for provider in data.providers:
        ours = GENAI_PROVIDERS.get(provider.id)
        if ours is None:
            continue
        for info in provider.models:
            model, skipped = _genai_model(ours, info, source)
            name = f"{ours}/{info.id}"
            if skipped:
                left_out.append(f"{name}: genai-prices units not per token: {', '.join(sorted(skipped))}")
            # No output rate is fine (embeddings produce no output tokens); no input rate is not.
            missing = [key for key in ("input",) if any(key not in e["rates"] for e in model["prices"])]
            if missing:
                left_out.append(f"{name}: no {' or '.join(missing)} rate per token (model left out)")
                dropped.append(model)
                continue
            models.append(model)
    return version, models, dropped, left_out


def _genai_model(ours: str, info: Any, source: str) -> tuple[dict[str, Any], set[str]]:
    skipped: set[str] = set()
    conditional = info.prices if isinstance(info.prices, list) else None
    if conditional is None:
        prices = [_genai_entry(info.prices, None, source, skipped)]
    else:
        prices = [_genai_entry(c.prices, _start(c.constraint, info.id), source, skipped) for c in conditional]
    grouped: dict[str, list[Any]] = defaultdict(list)
    for variant in info.price_variants or ():
        ((key, value),) = variant.when.items()
        if (key, value) == GENAI_STANDARD_WHEN:
            if vars(variant.prices):
                raise SystemExit(f"{info.id}: a non-empty default-tier variant; teach the generator it")
            continue
        grouped[GENAI_MODES[(key, value)]].append(variant)
    # genai-prices takes the FIRST active variant; our entries are oldest first, last in force wins.
    modes = {
        mode: [
            _genai_entry(v.prices, _start(v.constraint, info.id), source, skipped) for v in reversed(variants)
        ]
        for mode, variants in grouped.items()
    }
    model: dict[str, Any] = {"provider": ours, "id": info.id}
    if info.name:
        model["name"] = info.name
    model.update(source=source, match=_genai_clause(info.match), prices=prices)
    if modes:
        model["modes"] = modes
    return model, skipped


def _start(constraint: Any, model_id: str) -> str | None:
    if constraint is None:
        return None
    started = getattr(constraint, "start_date", None)
    if started is None:
        raise SystemExit(f"{model_id}: constraint {constraint!r} is not a start date; teach the generator it")
    return started.isoformat()


def _genai_entry(price: Any, started: str | None, source: str, skipped: set[str]) -> dict[str, Any]:
    rates: dict[str, str] = {}
    tiers: dict[int, dict[str, str]] = defaultdict(dict)
    fees: dict[str, str] = {}
    for key, value in vars(price).items():
        if value is None or key.startswith("_"):
            continue
        if key in GENAI_FEES and not hasattr(value, "tiers"):
            fees[GENAI_FEES[key]] = amount(value)
        elif key in GENAI_RATES and hasattr(value, "tiers"):
            rates[GENAI_RATES[key]] = amount(value.base)
            for tier in value.tiers:
                tiers[tier.start][GENAI_RATES[key]] = amount(tier.price)
        elif key in GENAI_RATES:
            rates[GENAI_RATES[key]] = amount(value)
        else:
            skipped.add(key)
    entry: dict[str, Any] = {"from": started, "source": source, "rates": rates}
    if tiers:
        entry["tiers"] = [{"above": above, "rates": tiers[above]} for above in sorted(tiers)]
    if fees:
        entry["fees_per_1k"] = fees
    return entry


def _genai_clause(clause: Any) -> dict[str, Any]:
    kind = type(clause).__name__
    if kind == "ClauseOr":
        return {"any": [_genai_clause(sub) for sub in clause.or_]}
    if kind == "ClauseAnd":
        return {"all": [_genai_clause(sub) for sub in clause.and_]}
    for attr in ("equals", "starts_with", "ends_with", "contains", "regex"):
        if hasattr(clause, attr):
            return {attr: getattr(clause, attr)}
    raise SystemExit(f"unknown genai-prices match clause {clause!r}; teach the generator it")


# ---------------------------------------------------------------- LiteLLM (second)


def read_litellm(path: Path, version: str | None) -> tuple[str, dict[str, Any]]:
    """(version, the price map) from a litellm wheel or a model_prices_and_context_window JSON file."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            names = wheel.namelist()
            json_name = next(
                (n for n in names if n.endswith("/model_prices_and_context_window.json")),
                next((n for n in names if n.endswith("/model_prices_and_context_window_backup.json")), None),
            )
            if json_name is None:
                sys.exit(f"{path}: no model_prices_and_context_window JSON inside")
            price_map = json.loads(wheel.read(json_name))
        found = re.match(r"litellm-([^-]+)-", path.name)
        return version or (found.group(1) if found else "unknown"), price_map
    return version or "unknown", json.loads(path.read_text(encoding="utf-8"))


def litellm_entries(price_map: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(our provider, model id lower-cased) -> (LiteLLM key, entry), for the four providers' token models."""
    found: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for key in sorted(price_map):
        entry = price_map[key]
        if not isinstance(entry, dict):
            continue
        ours = LITELLM_PROVIDERS.get(entry.get("litellm_provider", ""))
        if ours is None or "input_cost_per_token" not in entry or "output_cost_per_token" not in entry:
            continue
        model_id = key.split("/", 1)[1] if key.startswith(f"{entry['litellm_provider']}/") else key
        if "/" in model_id or model_id.startswith("ft:"):
            continue
        found.setdefault((ours, model_id.lower()), (key, entry))
    return found


def litellm_prices(entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """(standard entry body, mode entry bodies, regions) in our shape, without from/source."""
    bodies: dict[str, dict[str, Any]] = defaultdict(lambda: {"rates": {}, "tiers": defaultdict(dict)})
    for key, value in entry.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        for base in sorted(LITELLM_RATES, key=len, reverse=True):
            tail = _LITELLM_TAIL.fullmatch(key[len(base) :]) if key.startswith(base) else None
            if tail is None:
                continue
            body = bodies[LITELLM_MODES.get(tail["mode"] or "", "standard")]
            if tail["k"]:
                body["tiers"][int(tail["k"]) * 1000][LITELLM_RATES[base]] = per_mtok(value)
            else:
                body["rates"][LITELLM_RATES[base]] = per_mtok(value)
            break
    shaped = {}
    for mode, body in bodies.items():
        out: dict[str, Any] = {"rates": body["rates"]}
        if body["tiers"]:
            out["tiers"] = [
                {"above": above, "rates": body["tiers"][above]} for above in sorted(body["tiers"])
            ]
        shaped[mode] = out
    standard = shaped.pop("standard")
    search = entry.get("search_context_cost_per_query")
    if isinstance(search, dict) and search and len(set(search.values())) == 1:
        standard["fees_per_1k"] = {"web_search": amount(Decimal(repr(next(iter(search.values())))) * 1000)}
    return standard, shaped, list(_litellm_regions(entry).items())


def _litellm_regions(entry: dict[str, Any]) -> dict[str, str]:
    regions = {}
    specific = entry.get("provider_specific_entry")
    if isinstance(specific, dict):
        regions.update({k: amount(Decimal(repr(v))) for k, v in specific.items() if k in REGIONS})
    for key, region in LITELLM_REGION_KEYS.items():
        if isinstance(entry.get(key), int | float):
            regions[region] = amount(Decimal(repr(entry[key])))
    return regions


# ---------------------------------------------------------------- merge


class Merge:
    """Applies RULES to the two sources; keeps every disagreement with the rule that decided it."""

    def __init__(
        self, models: list[dict[str, Any]], dropped: list[dict[str, Any]], litellm_version: str
    ) -> None:
        self.models = models
        # genai-prices knows these but prices them in units we do not carry: LiteLLM must not refill them.
        self._known_unpriced = [(m, parse_match(m["match"])) for m in dropped]
        self.litellm = f"litellm {litellm_version}"
        self.disagreements: list[tuple[str, str]] = []  # (rule, text)
        self._matchers = [(m, parse_match(m["match"])) for m in models]

    def owner(self, provider: str, model_id: str) -> dict[str, Any] | None:
        for model, match in self._matchers:
            if model["provider"] == provider and match.matches(model_id):
                return model
        return None

    def run(self, entries: dict[tuple[str, str], tuple[str, dict[str, Any]]], today: date) -> None:
        by_model: dict[int, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for (provider, model_id), (key, entry) in entries.items():
            model = self.owner(provider, model_id)
            if model is None and any(
                m["provider"] == provider and match.matches(model_id) for m, match in self._known_unpriced
            ):
                continue
            if model is None:
                self._add_model(provider, model_id, key, entry)
            else:
                by_model[id(model)].append((key, entry))
        for model in self.models:
            found = by_model.get(id(model))
            if found:
                self._compare(model, found, today)

    def _add_model(self, provider: str, model_id: str, key: str, entry: dict[str, Any]) -> None:
        standard, modes, regions = litellm_prices(entry)
        model: dict[str, Any] = {
            "provider": provider,
            "id": model_id,
            "source": self.litellm,
            "match": {"equals": model_id},
            "prices": [{"from": None, "source": self.litellm, **standard}],
        }
        if modes:
            model["modes"] = {
                m: [{"from": None, "source": self.litellm, **body}] for m, body in sorted(modes.items())
            }
        if regions:
            model["regions"] = {r: {"multiplier": x, "source": self.litellm} for r, x in regions}
        self.models.append(model)
        self._matchers.append((model, parse_match(model["match"])))
        self.disagreements.append(("R2", f"{provider}/{model_id}: only LiteLLM prices it ({key}); added"))

    def _compare(self, model: dict[str, Any], found: list[tuple[str, dict[str, Any]]], today: date) -> None:
        name = f"{model['provider']}/{model['id']}"
        current = _in_force(model["prices"], today)
        regions: dict[str, set[str]] = defaultdict(set)
        for key, entry in found:
            standard, modes, entry_regions = litellm_prices(entry)
            self._compare_body(f"{name} vs {key}", current, standard)
            for mode in COMPARED_MODES:
                if mode not in modes:
                    continue
                ours = _in_force(model.get("modes", {}).get(mode, []), today)
                if ours is None:
                    continue
                merged = {"rates": {**current["rates"], **ours["rates"]}, "tiers": ours.get("tiers", [])}
                self._compare_body(f"{name} {mode} vs {key}", merged, modes[mode])
            for region, multiplier in entry_regions:
                regions[region].add(multiplier)
        self._fill_modes(model, found)
        for region, values in sorted(regions.items()):
            if len(values) > 1:
                self.disagreements.append(
                    ("R4", f"{name}: LiteLLM gives {region} x{sorted(values)}; none kept")
                )
                continue
            multiplier = values.pop()
            model.setdefault("regions", {})[region] = {"multiplier": multiplier, "source": self.litellm}
            self.disagreements.append(("R4", f"{name}: {region} x{multiplier} only in LiteLLM; filled"))

    def _fill_modes(self, model: dict[str, Any], found: list[tuple[str, dict[str, Any]]]) -> None:
        # The LiteLLM key equal to the model id speaks for the model; else the first that matched it.
        exact = [(k, e) for k, e in found if k.split("/")[-1].lower() == model["id"].lower()]
        key, entry = (exact or found)[0]
        _, modes, _ = litellm_prices(entry)
        for mode in COMPARED_MODES:
            if mode in modes and mode not in model.get("modes", {}):
                model.setdefault("modes", {})[mode] = [{"from": None, "source": self.litellm, **modes[mode]}]
                self.disagreements.append(
                    ("R3", f"{model['provider']}/{model['id']}: {mode} rates only in LiteLLM ({key}); filled")
                )

    def _compare_body(self, where: str, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
        for rate, value in theirs["rates"].items():
            mine = ours["rates"].get(rate)
            if mine is not None and Decimal(mine) != Decimal(value):
                self.disagreements.append(("R1", f"{where}: {rate} genai-prices {mine} / LiteLLM {value}"))
        our_tiers = {t["above"]: t["rates"] for t in ours.get("tiers", [])}
        for tier in theirs.get("tiers", []):
            mine_tier = our_tiers.get(tier["above"])
            if mine_tier is None and our_tiers:
                self.disagreements.append(
                    (
                        "R1",
                        f"{where}: tier threshold genai-prices {sorted(our_tiers)} / LiteLLM {tier['above']}",
                    )
                )
                continue
            if mine_tier is None:
                self.disagreements.append(
                    ("R5", f"{where}: tier above {tier['above']} only in LiteLLM; not used")
                )
                continue
            for rate, value in tier["rates"].items():
                mine = mine_tier.get(rate)
                if mine is not None and Decimal(mine) != Decimal(value):
                    self.disagreements.append(
                        ("R1", f"{where}: {rate} above {tier['above']} genai-prices {mine} / LiteLLM {value}")
                    )


def apply_published_rules(models: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """R6: set what the providers publish as a rule; returns (rule, text) for every value it set."""
    notes = []
    for model in models:
        found = _CLAUDE_VERSION.match(model["id"]) if model["provider"] == "anthropic" else None
        if found is None or (int(found[1]), int(found[2] or 0)) < ANTHROPIC_US_ONLY_SINCE:
            continue
        regions = model.setdefault("regions", {})
        had = regions.get("us", {}).get("multiplier")
        if had == ANTHROPIC_US_ONLY:
            continue
        regions["us"] = {"multiplier": ANTHROPIC_US_ONLY, "source": ANTHROPIC_US_ONLY_SOURCE}
        was = f"LiteLLM said x{had}" if had else "no source had it"
        notes.append(("R6", f"anthropic/{model['id']}: US-only inference x{ANTHROPIC_US_ONLY} ({was}); set"))
    for model in models:
        rule = PUBLISHED_TIERS.get((model["provider"], model["id"]))
        if rule is None:
            continue
        above, input_factor, output_factor = rule
        for entry in model["prices"]:
            if entry.get("tiers"):
                continue
            entry["tiers"] = [
                {
                    "above": above,
                    "rates": {
                        key: amount(Decimal(value) * (output_factor if key == "output" else input_factor))
                        for key, value in entry["rates"].items()
                        if key in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
                    },
                }
            ]
            notes.append(
                (
                    "R7",
                    f"{model['provider']}/{model['id']}: tier above {above} ({PUBLISHED_TIERS_SOURCE}); set",
                )
            )
    return notes


def _in_force(entries: list[dict[str, Any]], today: date) -> dict[str, Any] | None:
    chosen = None
    for entry in entries:
        if entry["from"] is None or date.fromisoformat(entry["from"]) <= today:
            chosen = entry
    return chosen or (entries[0] if entries else None)


# ---------------------------------------------------------------- the file and its diff


def content_hash(models: list[dict[str, Any]]) -> str:
    canonical = json.dumps(models, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--litellm", type=Path, required=True, help="litellm wheel or its price-map JSON")
    parser.add_argument("--litellm-version", help="version of a bare JSON file (read from a wheel's name)")
    parser.add_argument("--out", type=Path, default=CATALOGUE, help="catalogue to compare with and write")
    parser.add_argument("--dry-run", action="store_true", help="report only; do not write")
    args = parser.parse_args(argv)
    if not args.litellm.is_file():
        parser.error(f"{args.litellm} is not a file")

    today = datetime.now(UTC).date()
    genai_version, models, dropped, left_out = read_genai()
    litellm_version, price_map = read_litellm(args.litellm, args.litellm_version)
    merge = Merge(models, dropped, litellm_version)
    merge.run(litellm_entries(price_map), today)
    merge.disagreements.extend(apply_published_rules(merge.models))

    old = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else None
    digest = content_hash(merge.models)
    same = old is not None and str(old.get("version", "")).endswith(f"+{digest}")
    catalogue = {
        "format": 1,
        "version": old["version"] if same and old else f"{today.isoformat()}+{digest}",
        "generated_from": [
            {"name": "genai-prices", "version": genai_version, "role": "primary"},
            {"name": "litellm", "version": litellm_version, "role": "second"},
        ],
        "models": merge.models,
    }

    counts: Counter[tuple[str, str]] = Counter((m["provider"], m["source"]) for m in merge.models)
    print(f"catalogue {catalogue['version']}: {len(merge.models)} models")
    for provider in ("anthropic", "openai", "gemini", "xai"):
        parts = ", ".join(f"{n} from {src}" for (p, src), n in sorted(counts.items()) if p == provider)
        print(f"  {provider}: {sum(n for (p, _), n in counts.items() if p == provider)} ({parts})")
    rules = Counter(rule for rule, _ in merge.disagreements)
    print(f"\nsource disagreements and fills: {len(merge.disagreements)}")
    for rule, text in RULES.items():
        print(f"  {rule} x{rules.get(rule, 0)}: {text}")
    for rule, text in merge.disagreements:
        print(f"  [{rule}] {text}")
    print(f"\nleft out (not priced per token by genai-prices): {len(left_out)}")
    for line in left_out:
        print(f"  {line}")
    changes = diff_catalogues(old, catalogue)
    print(
        f"\ndiff against {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}: "
        f"{changes.summary()}"
    )
    for line in changes.lines():
        print(f"  {line}")

    try:
        validate_catalogue(catalogue)
    except CatalogueError as exc:
        print(f"\nNOT WRITTEN: {exc}", file=sys.stderr)
        return 1
    if not args.dry_run:
        args.out.write_text(json.dumps(catalogue, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
