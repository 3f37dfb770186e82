"""The Ladder store: tables, sessions, schema versions and the lineage ledger."""
