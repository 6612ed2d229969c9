"""Drafting: notes become a cited draft (the draft model, the service, citations, markdown)."""
