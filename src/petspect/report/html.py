"""Self-contained HTML reports: headings, text, metric tables and matplotlib figures (inline PNG).

A report is one ``index.html`` file that any browser opens offline: figures are embedded as base64
PNG, styles are inline, nothing is fetched. Build it with :class:`HtmlReport` and write it atomically.
This is petspect's one HTML writer: the denoising reports (:mod:`petspect.tasks.denoise_report`) and
the detector study's report (:mod:`petspect.detector.report`) are both assembled with it.

Examples
--------
>>> rep = HtmlReport("Denoising benchmark")
>>> rep.heading("Metrics")
>>> rep.table([{"method": "gaussian", "psnr_db": 31.2}], floatfmt=".2f")
>>> html = rep.render()
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from petspect._fileio import atomic_write_text

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{border-bottom:2px solid #446;padding-bottom:.2em}h2{margin-top:1.6em;color:#335}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}tr.best td{font-weight:bold;background:#efe}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}img{max-width:100%}
.meta{color:#666;font-size:.85em}pre{background:#f6f6f6;padding:.6em;overflow:auto}
"""


def figure_to_png_bytes(fig: Any, *, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes (and close it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def format_number(value: Any, fmt: str = ".3g", *, na_rep: str = "-") -> str:
    """A number as text with ``fmt``; ``na_rep`` for NaN, infinities and None; other values as ``str``.

    Python and numpy floats are formatted; integers and booleans are written as they are.
    """
    if value is None:
        return na_rep
    if isinstance(value, (float, np.floating)):
        return format(float(value), fmt) if math.isfinite(value) else na_rep
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _fmt(value: Any, floatfmt: str, na_rep: str | None = None) -> str:
    if na_rep is not None and (value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(value))):
        return html.escape(na_rep)
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return html.escape(str(value))


class HtmlReport:
    """Accumulates report sections and renders one self-contained HTML page.

    Parameters
    ----------
    title : str
        Page title and top heading.
    subtitle : str, optional
        A line under the title (e.g. the command that made it).
    """

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.parts.append(f"<p class='meta'>{html.escape(subtitle) + ' &middot; ' if subtitle else ''}"
                          f"made by petspect, {stamp}</p>")

    def heading(self, text: str, level: int = 2) -> None:
        """Add a section heading (h2 by default)."""
        lvl = min(max(int(level), 2), 4)
        self.parts.append(f"<h{lvl}>{html.escape(text)}</h{lvl}>")

    def paragraph(self, text: str) -> None:
        """Add a paragraph of plain text (escaped)."""
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def preformatted(self, text: str) -> None:
        """Add preformatted text (e.g. a configuration)."""
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None,
              floatfmt: str = ".4g", highlight: Iterable[int] = (), caption: str | None = None,
              na_rep: str | None = None) -> None:
        """Add a table of dict rows; ``highlight`` row indices are shown in bold.

        ``na_rep`` (e.g. ``"-"``) replaces missing values and non-finite floats; by default they are
        written as they are (``nan``, ``inf``, ``None``) and a missing key as an empty cell.
        """
        if not rows:
            return
        cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
        marked = set(highlight)
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>")
        for i, r in enumerate(rows):
            cls = " class='best'" if i in marked else ""
            default = None if na_rep is not None else ""
            out.append(f"<tr{cls}>" + "".join(f"<td>{_fmt(r.get(c, default), floatfmt, na_rep)}</td>" for c in cols)
                       + "</tr>")
        out.append("</table>")
        self.parts.append("".join(out))

    def metrics_table(self, metrics: Mapping[str, Mapping[str, float]], *, better: Mapping[str, str] | None = None,
                      floatfmt: str = ".3f", caption: str | None = None) -> None:
        """Add a method x metric table from ``{method: {metric: value}}``.

        ``better`` maps a metric to "higher" or "lower"; the best value of each such metric is bold.
        """
        methods = list(metrics)
        cols = list(dict.fromkeys(k for m in methods for k in metrics[m]))
        best: dict[str, str] = {}
        for c, direction in (better or {}).items():
            vals = [(m, metrics[m][c]) for m in methods if c in metrics[m]]
            if vals:
                key = (lambda mv: mv[1]) if direction == "higher" else (lambda mv: -mv[1])
                if direction == "abs-lower":
                    key = lambda mv: -abs(mv[1])  # noqa: E731
                best[c] = max(vals, key=key)[0]
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<tr><th>method</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>")
        for m in methods:
            cells = []
            for c in cols:
                v = metrics[m].get(c, "")
                txt = _fmt(float(v), floatfmt) if isinstance(v, (int, float)) else html.escape(str(v))
                cells.append(f"<td><b>{txt}</b></td>" if best.get(c) == m else f"<td>{txt}</td>")
            out.append(f"<tr><td>{html.escape(m)}</td>{''.join(cells)}</tr>")
        out.append("</table>")
        self.parts.append("".join(out))

    def figure(self, fig: Any, caption: str | None = None, *, dpi: int = 110) -> None:
        """Add a matplotlib figure as an inline PNG (the figure is closed)."""
        self.image_png(figure_to_png_bytes(fig, dpi=dpi), caption)

    def image_png(self, png: bytes, caption: str | None = None) -> None:
        """Add PNG bytes as an inline image."""
        b64 = base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure><img alt='{html.escape(caption or 'figure')}' src='data:image/png;base64,{b64}'/>{cap}</figure>")

    def render(self) -> str:
        """The whole HTML page."""
        body = "\n".join(self.parts)
        return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")

    def write(self, path: str | Path) -> Path:
        """Write the page atomically; returns the path."""
        p = Path(path)
        atomic_write_text(p, self.render())
        return p
