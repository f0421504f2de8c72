"""Images drawn with half-block characters: two pixels a cell, in any terminal with colour.

Rich downgrades the colours to what the terminal has (truecolor, 256 or 16), so the picture
degrades instead of breaking; terminals with a graphics protocol still get the same cells.
"""

from __future__ import annotations

from typing import Any

from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text


class HalfBlocks:
    """A PIL image as rows of '▀' (top pixel in the foreground, bottom pixel in the background)."""

    def __init__(self, image: Any, width: int = 24, caption: str | None = None) -> None:
        self.image = image.convert("RGB")
        self.width = max(2, width)
        self.caption = caption

    def _pixels(self, width: int) -> Any:
        w, h = self.image.size
        rows = max(1, round(h * width / w / 2))  # a cell is about twice as tall as wide
        return self.image.resize((width, rows * 2))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = min(self.width, options.max_width)
        return Measurement(width, width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = min(self.width, options.max_width)
        img = self._pixels(width)
        px = img.load()
        cache: dict[tuple[Any, Any], Style] = {}
        for y in range(0, img.size[1], 2):
            for x in range(width):
                key = (px[x, y], px[x, y + 1])
                style = cache.get(key)
                if style is None:
                    style = cache[key] = Style(color=Color.from_rgb(*key[0]), bgcolor=Color.from_rgb(*key[1]))
                yield Segment("▀", style)
            yield Segment.line()
        if self.caption:
            yield from console.render(Text(self.caption, style="dim"), options.update(width=width))
