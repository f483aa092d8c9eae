"""learning: see the modules."""
