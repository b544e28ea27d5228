"""`GET /v1/rates`: the price catalogue in force, for meters to install (public: prices are not a secret).

Every paired meter asks after its sync passes with `If-None-Match` of the version it holds, so the usual
answer is an empty 304; the catalogue is read from the warehouse at most every `rates_cache_seconds`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from halton_api.catalogue_in_force import catalogue_for
from halton_api.deps import Settings
from halton_api.models import Problem
from halton_meter.catalogue.etag import etag_matches

router = APIRouter(prefix="/v1", tags=["rates"])

VERSION_HEADER = "X-Halton-Catalogue-Version"


@router.get(
    "/rates",
    summary="The price catalogue in force (rates.json format 1), with its version as a strong ETag",
    responses={
        200: {"content": {"application/json": {}}, "description": "The catalogue document."},
        304: {"description": "The catalogue named by If-None-Match is still the one in force."},
        503: {"model": Problem, "description": "The warehouse is unreachable (Retry-After)."},
    },
)
async def rates(request: Request, settings: Settings) -> Response:
    current = await catalogue_for(request, settings)
    headers = {
        "ETag": current.etag,
        VERSION_HEADER: current.version,
        # Meters revalidate on every ask: the answer to a matching If-None-Match is an empty 304.
        "Cache-Control": "no-cache",
    }
    if etag_matches(request.headers.get("if-none-match"), current.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(current.document, media_type="application/json", headers=headers)
