"""Reports: self-contained HTML pages with figures and metric tables."""

from petspect.report.html import HtmlReport, figure_to_png_bytes

__all__ = ["HtmlReport", "figure_to_png_bytes"]
