"""Price catalogues for tests: the packaged rates.json, edited the way a real update changes it."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from halton_meter.catalogue import packaged_text

SOURCE = "test catalogue"


def packaged_document() -> dict[str, Any]:
    return json.loads(packaged_text())


def edited_catalogue(
    version: str,
    *,
    new_models: Sequence[tuple[str, str, str, str]] = (),
    dated_prices: Sequence[tuple[str, str, str, str, str]] = (),
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The packaged catalogue (or ``base``) under ``version``, with:

    ``new_models``: (provider, id, input, output) models it did not know, matched by their exact id;
    ``dated_prices``: (provider, id, from, input, output) a standard price of a known model from a day on.
    """
    doc = copy.deepcopy(base if base is not None else packaged_document())
    doc["version"] = version
    for provider, model_id, input_rate, output_rate in new_models:
        doc["models"].insert(
            0,
            {
                "provider": provider,
                "id": model_id,
                "name": model_id,
                "source": SOURCE,
                "match": {"equals": model_id},
                "prices": [
                    {"from": None, "source": SOURCE, "rates": {"input": input_rate, "output": output_rate}}
                ],
            },
        )
    for provider, model_id, day, input_rate, output_rate in dated_prices:
        (entry,) = [m for m in doc["models"] if m["provider"] == provider and m["id"] == model_id]
        entry["prices"].append(
            {"from": day, "source": SOURCE, "rates": {"input": input_rate, "output": output_rate}}
        )
    return doc
