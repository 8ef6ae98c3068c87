"""Small server-rendered SVG charts for the dashboard: lines over days, bars, up/down bars, a gauge.

Every label and name is escaped as it goes in, and everything else in the markup is a number or a
constant, so each chart comes back as markupsafe.Markup that a template puts into the page as it is.
Each chart is an <svg role="img"> with a text alternative.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#1d4ed8", "#b45309", "#15803d", "#9333ea")
UP, DOWN, GRID, INK, MUTED = "#15803d", "#b91c1c", "#e4e4e7", "#1b1b1f", "#52525b"
FONT = 'font-family="system-ui, sans-serif"'


def _svg(width: int, height: int, label: str, body: list[str]) -> Markup:
    """The one place a chart becomes markup: `body` holds escaped text, numbers and constants only."""
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
                  f'role="img" aria-label="{escape(label)}" {FONT}><title>{escape(label)}</title>'
                  + "".join(body) + "</svg>")


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 5 × 10^n)."""
    if value <= 0:
        return 1
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if factor * step >= value:
            return factor * step
    return 10 * step


def line_chart(labels: Sequence[str], series: dict[str, Sequence[float]], label: str,
               width: int = 1040, height: int = 240) -> Markup:
    """One line per series over `labels` (days), with a legend and a few x labels."""
    left, right, top, bottom = 36, 10, 26, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((max(v) for v in series.values() if len(v)), default=0))
    n = max(len(labels), 1)
    x = (lambda i: left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2))
    y = (lambda v: top + plot_h - plot_h * v / peak)
    body = []
    for frac in (0, 0.5, 1):
        gy = top + plot_h - plot_h * frac
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{left - 6}" y="{gy + 4:.1f}" font-size="11" text-anchor="end" fill="{MUTED}">'
                    f'{peak * frac:g}</text>')
    ticks = sorted({0, n // 3, 2 * n // 3, n - 1}) if n > 1 else [0]
    for i in ticks:
        if i < len(labels):
            anchor = "end" if i == n - 1 and n > 1 else "middle"
            body.append(f'<text x="{x(i):.1f}" y="{height - 8}" font-size="11" text-anchor="{anchor}" '
                        f'fill="{MUTED}">{escape(labels[i][5:])}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        if points:
            body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.2" stroke-linejoin="round" '
                        f'points="{points}"/>')
        for i, v in enumerate(values):
            if v:
                body.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.6" fill="{colour}">'
                            f'<title>{escape(labels[i])}: {escape(name)} {v:g}</title></circle>')
        lx = left + k * 130
        body.append(f'<rect x="{lx}" y="6" width="12" height="12" rx="2" fill="{colour}"/>'
                    f'<text x="{lx + 17}" y="16" font-size="12" fill="{INK}">{escape(name)}</text>')
    return _svg(width, height, label, body)


def bar_chart(bars: Sequence[tuple[str, float]], label: str, width: int = 320, height: int = 200,
              colour: str = PALETTE[1]) -> Markup:
    """Vertical bars with their value on top (e.g. how many ratings of 1★ … 5★)."""
    colour = escape(colour)
    left, top, bottom = 10, 18, 26
    plot_h = height - top - bottom
    peak = max((v for _, v in bars), default=0) or 1
    slot = (width - 2 * left) / max(len(bars), 1)
    body = [f'<line x1="{left}" x2="{width - left}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="{GRID}"/>']
    for i, (name, value) in enumerate(bars):
        h = plot_h * value / peak
        bx = left + i * slot + slot * 0.18
        body.append(f'<rect x="{bx:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.64:.1f}" height="{h:.1f}" '
                    f'rx="3" fill="{colour}"><title>{escape(name)}: {value:g}</title></rect>')
        body.append(f'<text x="{bx + slot * 0.32:.1f}" y="{top + plot_h - h - 4:.1f}" font-size="12" '
                    f'text-anchor="middle" fill="{INK}">{value:g}</text>')
        body.append(f'<text x="{bx + slot * 0.32:.1f}" y="{height - 8}" font-size="12" text-anchor="middle" '
                    f'fill="{MUTED}">{escape(name)}</text>')
    return _svg(width, height, label, body)


def up_down_bars(rows: Sequence[tuple[str, int, int]], label: str, width: int = 1040) -> Markup:
    """One horizontal bar per row: the thumbs-up share in green, down in red, ratio and counts beside."""
    if not rows:
        return _svg(width, 40, label, [f'<text x="8" y="24" font-size="13" fill="{MUTED}">No thumbs yet.</text>'])
    name_w, tail_w, row_h = 190, 120, 26
    bar_w = width - name_w - tail_w
    height = row_h * len(rows) + 8
    body = []
    for i, (name, up, down) in enumerate(rows):
        total = up + down
        y = 4 + i * row_h
        up_w = bar_w * up / total if total else 0
        short = name if len(name) <= 28 else name[:27] + "…"
        body.append(f'<text x="{name_w - 8}" y="{y + 16}" font-size="12" text-anchor="end" fill="{INK}">'
                    f'<title>{escape(name)}</title>{escape(short)}</text>')
        body.append(f'<rect x="{name_w}" y="{y + 3}" width="{up_w:.1f}" height="16" fill="{UP}"/>')
        body.append(f'<rect x="{name_w + up_w:.1f}" y="{y + 3}" width="{bar_w - up_w:.1f}" height="16" fill="{DOWN}"/>')
        ratio = f"{100 * up / total:.0f}%" if total else "—"
        body.append(f'<text x="{name_w + bar_w + 8}" y="{y + 16}" font-size="12" fill="{INK}">{ratio} '
                    f'<tspan fill="{MUTED}">({up:d}↑ {down:d}↓)</tspan></text>')
    return _svg(width, height, label, body)


def gauge(ratio: float | None, label: str, caption: str, size: int = 160) -> Markup:
    """A ring showing a share (e.g. rating offers answered), the percentage in the middle."""
    r, c = size * 0.38, size / 2
    circumference = 2 * 3.141592653589793 * r
    share = max(0.0, min(1.0, ratio or 0.0))
    text = "—" if ratio is None else f"{ratio * 100:.0f}%"
    body = [
        f'<circle cx="{c}" cy="{c}" r="{r:.1f}" fill="none" stroke="{GRID}" stroke-width="14"/>',
        (f'<circle cx="{c}" cy="{c}" r="{r:.1f}" fill="none" stroke="{PALETTE[0]}" stroke-width="14" '
         f'stroke-dasharray="{circumference * share:.1f} {circumference:.1f}" transform="rotate(-90 {c} {c})"/>'),
        f'<text x="{c}" y="{c + 2}" font-size="26" font-weight="700" text-anchor="middle" fill="{INK}">{text}</text>',
        f'<text x="{c}" y="{c + 22}" font-size="11" text-anchor="middle" fill="{MUTED}">{escape(caption)}</text>',
    ]
    return _svg(size, size, label, body)
