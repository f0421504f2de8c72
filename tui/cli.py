"""`steer-tui` entry point."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("steer-tui is not built yet; use steer-agent", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
