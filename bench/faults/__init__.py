"""The demo stack under faults: `python -m bench.faults` (see cli.py and the README)."""
