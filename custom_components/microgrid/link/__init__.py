"""link: see the modules."""
