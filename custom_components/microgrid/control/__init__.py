"""control: see the modules."""
