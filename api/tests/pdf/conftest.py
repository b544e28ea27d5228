"""A sample report in the shape the real report templates take (running header and footer, a cover with
headline numbers, an inline SVG chart, a long table), for testing rendering and signing on their own."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from html import escape

import pytest

HEADER_LABELS = ("Day", "Request ID", "Project", "Model", "Tokens", "Cost")


def row_id(n: int) -> str:
    return f"req_{n:05d}_sample"


def row_cost(n: int) -> Decimal:
    return Decimal(n * 37 % 1000) / 100 + Decimal("0.25")


def _chart_svg(days: int) -> str:
    """A bar chart drawn the way the pages' chart module draws one: plain SVG, no script."""
    width, height, pad = 640, 200, 30
    values = [((d * 53) % 97) + 20 for d in range(days)]
    top = max(values)
    bar = (width - 2 * pad) / days
    bars = "".join(
        f'<rect x="{pad + i * bar + 1:.1f}" y="{height - pad - v / top * (height - 2 * pad):.1f}" '
        f'width="{bar - 2:.1f}" height="{v / top * (height - 2 * pad):.1f}" fill="#2f6f9f"/>'
        for i, v in enumerate(values)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Daily spend">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#9aa7b4"/>'
        f"{bars}"
        f'<text x="{pad}" y="{height - 8}" font-size="11" fill="#5b6673">1 May</text>'
        f'<text x="{width - pad}" y="{height - 8}" font-size="11" fill="#5b6673" text-anchor="end">'
        f"{days} May</text></svg>"
    )


def sample_report_html(*, workspace_name: str = "Acme Robotics", rows: int = 120, sections: int = 1) -> str:
    """`sections` repeats chart + table (a longer period); `rows` is the table length per section."""
    body = []
    for section in range(sections):
        table_rows = "".join(
            "<tr>"
            f"<td>2026-05-{(n % 31) + 1:02d}</td><td>{row_id(section * rows + n)}</td>"
            f"<td>acme/project-{n % 7}</td><td>claude-sonnet-4-5</td>"
            f'<td class="num">{(n * 1531) % 90000 + 1000:,}</td>'
            f'<td class="num">${row_cost(section * rows + n):,.2f}</td>'
            "</tr>"
            for n in range(rows)
        )
        heads = "".join(
            f'<th class="num">{h}</th>' if h in ("Tokens", "Cost") else f"<th>{h}</th>" for h in HEADER_LABELS
        )
        body.append(
            f"<h2>Spend over time{f' — part {section + 1}' if sections > 1 else ''}</h2>"
            f'<figure class="chart">{_chart_svg(31)}<figcaption>Daily spend, USD.</figcaption></figure>'
            f'<h2>Requests</h2><table class="data"><thead><tr>{heads}</tr></thead>'
            f"<tbody>{table_rows}</tbody></table>"
        )
    name = escape(workspace_name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} — project report, May 2026</title>
<meta name="author" content="{name}"></head>
<body>
<header class="report-header"><img class="logo" src="favicon.svg" alt=""><span class="workspace-name">{name}</span></header>
<footer class="report-footer">Costs as metered by Halton Meter · methodology:
<a href="https://haltonmeter.com/docs/concepts/pricing">haltonmeter.com/docs/concepts/pricing</a></footer>
<section class="cover">
<h1>Project report: acme/app</h1>
<p class="subtitle">1&ndash;31 May 2026 · all providers</p>
<dl class="facts"><dt>Workspace</dt><dd>{name}</dd><dt>Hourly rate</dt><dd>$140.00</dd></dl>
<div class="kpis">
<div class="kpi"><span class="label">Spend</span><span class="value">$342.18</span><span class="change">+12.4% vs April</span></div>
<div class="kpi"><span class="label">Requests</span><span class="value">18,204</span></div>
<div class="kpi"><span class="label">Variance</span><span class="value variance-ok">0.04%</span></div>
</div>
</section>
{"".join(body)}
<p class="methodology">Each request is priced from its token counts with the price card in force when it was
made; totals are reconciled against the provider's billing statement where one is connected.</p>
</body></html>"""


@pytest.fixture(scope="session")
def sample_report() -> Callable[..., str]:
    return sample_report_html
