#!/usr/bin/env python
"""The demo's ``manage.py``; it runs from any folder: ``python demo_site/manage.py check``."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    # The repository, not this folder, goes on the path: `demo_site` is imported as a package.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
