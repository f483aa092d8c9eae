"""services: see the modules."""
