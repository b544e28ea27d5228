"""Captured requests, read back from the warehouse (deduplicated), as paged JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from halton_api.deps import ApiReader, Writer
from halton_api.models import RequestPage
from halton_api.warehouse_access.raw_requests import list_requests

router = APIRouter(prefix="/v1/{workspace}/requests", tags=["requests"])


@router.get("", response_model=RequestPage, summary="Captured requests, newest first")
async def requests_page(
    ctx: ApiReader,
    writer: Writer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
    provider_request_id: Annotated[str | None, Query(max_length=256)] = None,
) -> RequestPage:
    databases = writer.databases
    page, next_cursor = await writer.with_retries(
        lambda client: list_requests(
            client,
            databases=databases,
            workspace_id=ctx.workspace.id,
            limit=limit,
            cursor=cursor,
            provider_request_id=provider_request_id,
        )
    )
    return RequestPage(requests=page, next_cursor=next_cursor)
