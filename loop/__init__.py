"""The Ladder engine: inbox, datasets, training, export, evals, gates and lineage."""
