"""planning: see the modules."""
