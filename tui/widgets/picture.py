"""A captioned picture drawn with half-block cells."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from tui.pixels import HalfBlocks


class Picture(Static):
    """A PIL image, ``cells`` columns wide."""

    def __init__(self, image: Any, caption: str = "", cells: int = 16, **kwargs: Any) -> None:
        super().__init__(HalfBlocks(image, cells, caption), **kwargs)
