"""The audit log's captured requests: one row per synced API call (from `marts.requests`, through the same
paged, searchable table the project pages show)."""

from __future__ import annotations

from halton_api.dashboards import priced_requests
from halton_api.dashboards.page_models import RequestTable
from halton_api.dashboards.view import View


async def build_captured_requests(
    view: View, *, search: str | None, cursor: str | None, prompt_hash: str | None = None
) -> RequestTable:
    if cursor:
        priced_requests.decode_cursor(
            cursor
        )  # a bad cursor is the caller's 422, before the warehouse is asked
    scope, names = view.scope, view.facts.device_name
    return await view.reader.run(
        lambda client, m: priced_requests.recent(
            client, m, scope, device_name=names, cursor=cursor, search=search, prompt_hash=prompt_hash
        )
    )
