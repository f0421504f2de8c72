"""``python -m steering.toy.build``: rebuild the toy world from a seed (see ``pipeline``)."""

from __future__ import annotations

from steering.toy.build.pipeline import main

main()
