"""Branches & tickets: spend by the ticket, git branch and tool the calls came from, across every device
("what did PROJ-1234 cost"). Reads `branch_spend` (or, for a 24-hour view, the per-call `requests` mart, since
branch_spend is daily), so every rail filter applies, branch, ticket and tool included."""

from __future__ import annotations

from decimal import Decimal

from halton_api.dashboards import spend
from halton_api.dashboards.filters import ORIGIN_PARAMETERS, Scope
from halton_api.dashboards.page_models import BranchesPublic, OriginSpend, RailOption
from halton_api.dashboards.reader import Marts
from halton_api.dashboards.view import View

LIMIT = 200
CHOICES = 500


def _source(m: Marts, scope: Scope) -> tuple[str, str]:
    """The table to read and its time column: branch_spend by day, the calls themselves by the hour."""
    if not scope.period.hourly:
        return f"{m.marts}.branch_spend", "day"
    calls = (
        "SELECT workspace_id, day, started_at, provider, model, project, device_id,"
        " ifNull(repository, '') AS repository, ifNull(branch, '') AS branch, ifNull(ticket, '') AS ticket,"
        " ifNull(tool, '') AS tool, ifNull(tool_version, '') AS tool_version, cost_usd AS spend_usd,"
        f" toUInt64(1) AS requests FROM {m.marts}.requests WHERE workspace_id = %(ws)s"
    )
    return f"({calls})", "started_at"


async def build_branches(view: View) -> BranchesPublic:
    scope = view.scope

    def query(client, m):
        table, time_column = _source(m, scope)
        where, params = scope.condition(time_column=time_column, origin=True)
        sums = "sum(spend_usd) AS spend, sum(requests) AS calls, uniqExact(device_id) AS devices"

        def rows(sql: str, parameters=params):
            return client.query(sql, parameters=parameters).result_rows

        totals = rows(
            f"SELECT sum(spend_usd), sum(requests), sumIf(spend_usd, branch != ''), sumIf(spend_usd, ticket != '')"
            f" FROM {table} WHERE {where}"
        )[0]
        tickets = rows(
            f"SELECT ticket, {sums}, uniqExact(branch), any(repository), arraySort(groupUniqArray(tool)), max(day)"
            f" FROM {table} WHERE {where} AND ticket != ''"
            f" GROUP BY ticket ORDER BY spend DESC, ticket LIMIT {LIMIT}"
        )
        branches = rows(
            f"SELECT branch, {sums}, repository, any(ticket), arraySort(groupUniqArray(tool)), max(day)"
            f" FROM {table} WHERE {where}"
            f" GROUP BY repository, branch ORDER BY spend DESC, repository, branch LIMIT {LIMIT}"
        )
        tools = rows(
            f"SELECT tool, {sums}, arraySort(groupUniqArray(tool_version)), max(day)"
            f" FROM {table} WHERE {where} GROUP BY tool ORDER BY spend DESC, tool LIMIT {LIMIT}"
        )
        # The rail's options: what the period holds before its own branch, ticket and tool choices.
        open_where, open_params = scope.condition(
            time_column=time_column, origin=True, skip=tuple(ORIGIN_PARAMETERS)
        )
        seen = {
            name: [
                value
                for (value,) in rows(
                    f"SELECT DISTINCT {column} FROM {table} WHERE {open_where} AND {column} != ''"
                    f" ORDER BY {column} LIMIT {CHOICES}",
                    open_params,
                )
            ]
            for name, column in ORIGIN_PARAMETERS.items()
        }
        return totals, tickets, branches, tools, seen

    totals, tickets, branches, tools, seen = await view.reader.run(query)
    total = totals[0] or Decimal(0)

    def group(key, amount, calls, devices, **rest) -> OriginSpend:
        return OriginSpend(
            key=key,
            spend_usd=amount or Decimal(0),
            requests=int(calls),
            devices=int(devices),
            share_pct=spend.share(amount or Decimal(0), total),
            **rest,
        )

    return BranchesPublic(
        workspace=view.slug,
        filters=view.filters.as_json(),
        period=spend.period_public(scope.period),
        totals={
            "spend_usd": total,
            "requests": int(totals[1] or 0),
            "on_branches_usd": totals[2] or Decimal(0),
            "on_tickets_usd": totals[3] or Decimal(0),
        },
        tickets=[
            group(t, a, c, d, branches=int(b), repository=r, tools=[x for x in tl if x], last_day=last)
            for t, a, c, d, b, r, tl, last in tickets
        ],
        branches=[
            group(b, a, c, d, repository=r, ticket=t, tools=[x for x in tl if x], last_day=last)
            for b, a, c, d, r, t, tl, last in branches
        ],
        tools=[
            group(t, a, c, d, tools=[v for v in versions if v], last_day=last)
            for t, a, c, d, versions, last in tools
        ],
        choices={
            name: [RailOption(value=value, label=value) for value in values] for name, values in seen.items()
        },
    )
