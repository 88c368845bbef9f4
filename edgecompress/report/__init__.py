"""The build report: a self-contained report.html (plots embedded) and summary.json."""

from edgecompress.report.html import render_report

__all__ = ["render_report"]
