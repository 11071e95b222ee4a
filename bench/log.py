"""The orchestrators' progress lines, on stderr (stdout is the report)."""

from __future__ import annotations

import sys
import time
from typing import Any


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)
