"""Synthetic scenes with known attributes, drawn with numpy, and the captions made from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Attribute families and their values. Order matters: indices are used as labels.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 0),
    "yellow": (230, 205, 0),
    "green": (30, 160, 50),
    "blue": (30, 70, 225),
    "purple": (140, 40, 175),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "cross")
PATTERNS = ("solid", "striped", "dotted", "checkered")
SIZES = ("small", "large")
FAMILIES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "pattern": PATTERNS,
    "size": SIZES,
}
KINDS = ("object", "field", "empty")
"""``object``: one shape on white; ``field``: the whole image one colour/texture; ``empty``: plain white."""

ANSWER_PREFIX = "The highlighted element is"
EMPTY_CAPTION = f"{ANSWER_PREFIX} nothing, the image is empty and white."

QUESTIONS: dict[str, str] = {
    "colour": "What colour is the highlighted element?",
    "shape": "What shape is the highlighted element?",
    "pattern": "What pattern does the highlighted element have?",
    "size": "How large is the highlighted element?",
}
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Scene:
    """One synthetic scene: its kind, attributes and where the shape sits."""

    kind: str
    colour: str | None = None
    shape: str | None = None
    pattern: str | None = None
    size: str | None = None
    cx: float = 0.5
    """Shape centre as a fraction of the image side."""
    cy: float = 0.5
    extent: float = 0.0
    """Shape side as a fraction of the image side."""
    phase: int = 0
    """Texture offset in pixels, so patterns do not always start at the same pixel."""

    def attributes(self) -> dict[str, str]:
        """The attribute values this scene carries (family -> value)."""
        out = {"colour": self.colour, "shape": self.shape, "pattern": self.pattern, "size": self.size}
        return {k: v for k, v in out.items() if v is not None}

    def caption(self) -> str:
        """The answer to the describe prompt, prefix included."""
        if self.kind == "empty":
            return EMPTY_CAPTION
        if self.kind == "field":
            if self.pattern == "solid":
                return f"{ANSWER_PREFIX} the colour {self.colour} filling the whole image."
            return f"{ANSWER_PREFIX} a {self.colour} {self.pattern} pattern filling the whole image."
        return f"{ANSWER_PREFIX} a {self.size} {self.colour} {self.pattern} {self.shape}."

    def answer(self, family: str) -> str:
        """The answer to the targeted question about ``family``."""
        if self.kind == "empty":
            return "There is nothing, the image is empty and white."
        if family == "colour":
            return f"It is {self.colour}."
        if family == "pattern":
            return "It is plain." if self.pattern == "solid" else f"It is {self.pattern}."
        if self.kind == "field":
            return "It fills the whole image."
        if family == "shape":
            return f"It is a {self.shape}."
        return f"It is {self.size}."


def texture_mask(pattern: str, side: int, phase: int = 0) -> np.ndarray:
    """Boolean [side, side] mask of the pixels that carry the colour for ``pattern``."""
    yy, xx = np.mgrid[0:side, 0:side]
    yy, xx = yy + phase, xx + phase
    if pattern == "solid":
        return np.ones((side, side), dtype=bool)
    if pattern == "striped":  # vertical stripes, 2 px on, 2 px off
        return (xx // 2) % 2 == 0
    if pattern == "dotted":  # 2x2 dots on a 5 px grid
        return ((xx % 5) < 2) & ((yy % 5) < 2)
    if pattern == "checkered":  # 4 px checks
        return ((xx // 4) + (yy // 4)) % 2 == 0
    raise ValueError(f"unknown pattern {pattern!r}")


def shape_mask(shape: str, side: int, cx: float, cy: float, extent: float) -> np.ndarray:
    """Boolean [side, side] mask of the shape's pixels."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    x0, y0, r = cx * side, cy * side, extent * side / 2
    dx, dy = xx - x0, yy - y0
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "triangle":  # apex up, base at the bottom
        t = (dy + r) / (2 * r)  # 0 at apex, 1 at base
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= t * r)
    if shape == "cross":
        arm = r / 2.6
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene, side: int = 64) -> np.ndarray:
    """The scene as a uint8 RGB array [side, side, 3]."""
    img = np.empty((side, side, 3), dtype=np.uint8)
    img[:] = WHITE
    if scene.kind == "empty":
        return img
    assert scene.colour is not None and scene.pattern is not None
    mask = texture_mask(scene.pattern, side, scene.phase)
    if scene.kind == "object":
        assert scene.shape is not None
        shape = shape_mask(scene.shape, side, scene.cx, scene.cy, scene.extent)
        # A solid outline keeps the silhouette readable whatever the texture inside it.
        mask = (mask & shape) | (shape & ~_erode(_erode(shape)))
    img[mask] = COLOURS[scene.colour]
    return img


def _erode(mask: np.ndarray) -> np.ndarray:
    """Pixels whose four neighbours are all in ``mask`` (outside the image counts as out)."""
    m = np.pad(mask, 1, constant_values=False)
    return m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]


# Share of each kind in a random draw: full fields matter for steering, so they are frequent.
KIND_WEIGHTS = {"object": 0.55, "field": 0.35, "empty": 0.10}
SIZE_EXTENT = {"small": (0.36, 0.46), "large": (0.64, 0.82)}


def sample_scene(rng: np.random.Generator, kind: str | None = None) -> Scene:
    """Draw one random scene (of ``kind`` if given)."""
    if kind is None:
        kind = str(rng.choice(KINDS, p=[KIND_WEIGHTS[k] for k in KINDS]))
    if kind == "empty":
        return Scene(kind="empty")
    colour = str(rng.choice(list(COLOURS)))
    phase = int(rng.integers(0, 20))
    if kind == "field":
        # Plain colour fields are as frequent as all textured fields together.
        pattern = "solid" if rng.random() < 0.4 else str(rng.choice(PATTERNS[1:]))
        return Scene(kind="field", colour=colour, pattern=pattern, phase=phase)
    size = str(rng.choice(SIZES))
    lo, hi = SIZE_EXTENT[size]
    extent = float(rng.uniform(lo, hi))
    margin = extent / 2 + 0.02
    cx, cy = (float(rng.uniform(margin, 1 - margin)) for _ in range(2))
    return Scene(
        kind="object",
        colour=colour,
        shape=str(rng.choice(SHAPES)),
        pattern=str(rng.choice(PATTERNS)),
        size=size,
        cx=cx,
        cy=cy,
        extent=extent,
        phase=phase,
    )


def sample_scenes(n: int, seed: int) -> list[Scene]:
    """``n`` random scenes, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    return [sample_scene(rng) for _ in range(n)]


def rng_scenes(n: int, seed: int) -> list[Scene]:
    """``n`` random scenes, scene ``i`` drawn from its own stream ``[seed, i]`` (the build's seed streams)."""
    return [sample_scene(np.random.default_rng([seed, i])) for i in range(n)]


def all_texts() -> list[str]:
    """Every caption, answer and question the scenes can produce (for the vocabulary)."""
    texts = [EMPTY_CAPTION, Scene(kind="empty").answer("colour")]
    texts += list(QUESTIONS.values())
    for colour in COLOURS:
        for pattern in PATTERNS:
            field = Scene(kind="field", colour=colour, pattern=pattern)
            texts += [field.caption()] + [field.answer(f) for f in FAMILIES]
            for shape in SHAPES:
                for size in SIZES:
                    obj = Scene(kind="object", colour=colour, shape=shape, pattern=pattern, size=size)
                    texts += [obj.caption()] + [obj.answer(f) for f in FAMILIES]
    return texts
