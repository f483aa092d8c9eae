"""people: see the modules."""
