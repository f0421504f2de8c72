"""``python -m steering.topk``: the top-k collection CLI."""

from __future__ import annotations

from steering.topk.cli import main

raise SystemExit(main())
