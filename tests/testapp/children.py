"""Targets for process pool children that misbehave before running anything."""

from __future__ import annotations

import os
from typing import Any


def exit_at_once(*args: Any) -> None:
    """A child that dies as it starts (a broken import, say): exit status 3."""
    os._exit(3)
