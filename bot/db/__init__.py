"""Persistence: models, engine, repositories (repositories never commit)."""
