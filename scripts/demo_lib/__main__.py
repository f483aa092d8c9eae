"""Entry point: `python -m demo_lib` (scripts/demo puts scripts/ on the path)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
