"""Use cases: each service owns its transactions and returns plain domain types."""
