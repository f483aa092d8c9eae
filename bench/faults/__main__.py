"""Entry point: `python -m bench.faults`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
