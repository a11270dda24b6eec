"""Rendering of reports: charts (matplotlib, Agg) and the md, html, csv and pdf formats.

Pure functions of a report's figures (the JSON-ready dict services/weekly_report.py builds): no store,
no network. Words come from Jinja2 templates under prompts/report/.
"""
