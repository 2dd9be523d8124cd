"""Reports: self-contained HTML pages with figures and metric tables."""

from petspect.report.html import HtmlReport, figure_to_png_bytes, format_number

__all__ = ["HtmlReport", "figure_to_png_bytes", "format_number"]
