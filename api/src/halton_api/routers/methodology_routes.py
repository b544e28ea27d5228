"""`/docs/concepts/pricing`: how every cost is computed, and every model's rates, from the catalogue in force.

Public (no sign-in): the PDF reports' footer links here. The rates are rendered from
`halton_meter.catalogue.display`, the same views `halton-meter rates show` prints, so they agree.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from halton_api.dashboards.filters import PROVIDERS
from halton_api.deps import Now, Prices
from halton_api.pages import render
from halton_api.pdf.reports import METHODOLOGY_PATH
from halton_meter.catalogue.display import FEE_LABELS, RATE_LABELS, catalogue_views, decimal_text

pages = APIRouter(include_in_schema=False)


@pages.get(METHODOLOGY_PATH)
async def pricing_page(request: Request, catalogue: Prices, now: Now) -> Response:
    # Calls are priced by their UTC day, so the rates shown are those in force today in UTC.
    day = now.date()
    return await render(
        request,
        "docs/pricing.html",
        catalogue=catalogue,
        day=day,
        providers=catalogue_views(catalogue, day),
        rate_labels=RATE_LABELS,
        fee_labels=FEE_LABELS,
        provider_names=PROVIDERS,
        dec=decimal_text,
    )
