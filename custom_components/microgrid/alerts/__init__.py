"""alerts: see the modules."""
