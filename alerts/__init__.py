"""Alerts (issue #6): rules matched in the stream right after enrichment, once per story, to channels."""
