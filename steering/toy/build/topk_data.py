"""Top-k training examples: a feature's masked top images, as the top-k explainer shows them.

Each example is ``n_images`` scenes sharing one attribute value (sometimes two), each masked as the
top-k view masks a feature's images (``steering.topk.views.masked_image`` on a synthetic patch-grid
activation map shaped like real ones), and the answer to the ``vlm_topk`` prompt naming the values all
images share and all show, in caption word order ("The visible regions show small red cross.").
The toy VLM trains on them beside captions and questions, so the paper's three modes (steering,
top-k, hybrid) are compared on the default world.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

import prompts
from steering.toy import scenes
from steering.topk.views import masked_image, upsample

N_IMAGES = 5
"""Images per top-k example (the evaluation shows 5)."""
SECOND_SHARE = 0.3
"""Share of top-k sets whose scenes share a second family's value as well."""
ANSWER_PREFIX = str(prompts.load("vlm_topk").meta.get("answer_prefix", ""))


def topk_prompt() -> str:
    return prompts.load("vlm_topk").render()


# Order in which a caption names values: "a large red striped circle".
CAPTION_ORDER = ("size", "colour", "pattern", "shape")
# How often each family is the shared one (the toy SAE's pure features are mostly colour and pattern).
FAMILY_WEIGHTS = {"colour": 0.35, "pattern": 0.35, "shape": 0.15, "size": 0.15}
# How the synthetic activation maps of an object set look (see ``activation_map``).
MAP_STYLES = {"surround": 0.45, "object": 0.3, "partial": 0.25}
# Texture pixels (inside the outline) a masked object must show for its pattern to count as visible;
# the edges a "surround" map leaves carry a few (16 taught the model to leave the pattern out there).
PATTERN_PIXELS = 4


# ----------------------------------------------------------------------------- top-k examples


def _matches(scene: scenes.Scene, fixed: dict[str, str]) -> bool:
    return all(scene.attributes().get(fam) == val for fam, val in fixed.items())


def sample_matching(rng: np.random.Generator, kind: str, fixed: dict[str, str]) -> scenes.Scene:
    """A random scene of ``kind`` carrying the ``fixed`` values (rejection keeps the build's distribution)."""
    for _ in range(10_000):
        scene = scenes.sample_scene(rng, kind)
        if _matches(scene, fixed):
            return scene
    raise RuntimeError(f"no {kind} scene carries {fixed}")


def object_cover(scene: scenes.Scene, side: int, grid: int) -> np.ndarray:
    """Float [grid, grid]: the share of each patch's pixels the scene's shape covers."""
    assert scene.shape is not None
    mask = scenes.shape_mask(scene.shape, side, scene.cx, scene.cy, scene.extent)  # [side, side]
    p = side // grid
    return mask.reshape(grid, p, grid, p).mean(axis=(1, 3))


def activation_map(scene: scenes.Scene, side: int, grid: int, rng: np.random.Generator, style: str) -> np.ndarray:
    """A synthetic float [grid, grid] map (> 0 where the 'feature fired'), shaped like real top-k maps.

    The toy SAE's object features mostly fire around the object, not on it: their masked images show
    the white background with a black hole where the shape is and its coloured edges (``surround``).
    Others fire on the object (``object``, sometimes with background) or on part of it (``partial``).
    Fields: every patch, or a random subset (real maps range from one patch to all 64).
    """
    n = grid * grid
    if scene.kind == "field":
        keep = np.arange(n) if rng.random() < 0.5 else rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False)
        visible = np.zeros(n, dtype=bool)
        visible[keep] = True
    else:
        cover = object_cover(scene, side, grid).flatten()  # [n]
        obj = cover > 0
        if style == "partial":
            idx = np.flatnonzero(obj)
            visible = np.zeros(n, dtype=bool)
            visible[rng.choice(idx, size=int(rng.integers(1, len(idx) + 1)), replace=False)] = True
        elif style == "object":
            visible = obj | (rng.random(n) < (rng.uniform(0, 1) if rng.random() < 0.5 else 0.0))
        elif style == "surround":
            hidden = (cover >= 0.5) | (obj & (rng.random(n) < rng.uniform(0, 1)))
            far = ~obj & (rng.random(n) < (rng.uniform(0, 0.25) if rng.random() < 0.3 else 0.0))
            visible = ~hidden & ~far
        else:
            raise ValueError(f"unknown map style {style!r}")
    amap = np.where(visible, rng.uniform(0.5, 2.0, size=n), 0.0).astype(np.float32)
    return amap.reshape(grid, grid)


def visible_families(scene: scenes.Scene, amap: np.ndarray, side: int, style: str) -> set[str]:
    """The families whose value a masked scene shows: colour from a few shape pixels, pattern from its
    texture (inside the outline), shape and size from the whole object or the hole it leaves."""
    shown = upsample(amap, (side, side)) > 0  # [side, side]
    if scene.kind == "field":
        return {"colour", "pattern"} if shown.any() else set()
    assert scene.shape is not None
    shape = scenes.shape_mask(scene.shape, side, scene.cx, scene.cy, scene.extent)
    inner = shape & scenes._erode(scenes._erode(shape))  # pixels with texture, not outline
    out = set()
    if (shown & shape).sum() >= 6:
        out.add("colour")
    if (shown & inner).sum() >= PATTERN_PIXELS:
        out.add("pattern")
    if style in ("object", "surround"):
        out |= {"shape", "size"}
    return out


def shared_answer(group: list[scenes.Scene], visible: tuple[str, ...] | set[str]) -> str:
    """" small red cross.": the values of ``visible`` families all scenes carry, in caption order."""
    values = []
    for fam in CAPTION_ORDER:
        vals = {s.attributes().get(fam) for s in group}
        if fam in visible and len(vals) == 1 and None not in vals:
            values.append(vals.pop())
    return " " + " ".join(values) + "." if values else ""


def _group(rng: np.random.Generator, n_images: int) -> tuple[list[scenes.Scene], str]:
    """``n_images`` scenes sharing one value (sometimes two), and the style of their maps."""
    families = list(FAMILY_WEIGHTS)
    family = str(rng.choice(families, p=list(FAMILY_WEIGHTS.values())))
    fixed = {family: str(rng.choice(scenes.FAMILIES[family]))}
    kinds = str(rng.choice(["object", "field", "mixed"], p=[0.4, 0.4, 0.2])) if family in ("colour", "pattern") \
        else "object"
    style = str(rng.choice(list(MAP_STYLES), p=list(MAP_STYLES.values())))
    if rng.random() < SECOND_SHARE:
        others = [f for f in families if f != family and (kinds == "object" or f in ("colour", "pattern"))]
        second = str(rng.choice(others))
        fixed[second] = str(rng.choice(scenes.FAMILIES[second]))
    group = []
    for _ in range(n_images):
        kind = kinds if kinds != "mixed" else str(rng.choice(["object", "field"]))
        group.append(sample_matching(rng, kind, fixed))
    return group, style


def topk_example(rng: np.random.Generator, side: int, grid: int, n_images: int = N_IMAGES) -> tuple[list[np.ndarray], str]:
    """One top-k example: ``n_images`` masked scenes sharing a value, and the answer naming the values
    they all share and all show (drawn again in the rare case where the masks hide every shared value)."""
    for _ in range(100):
        group, style = _group(rng, n_images)
        maps = [activation_map(s, side, grid, rng, style) for s in group]
        visible = set(CAPTION_ORDER)
        for s, amap in zip(group, maps):
            visible &= visible_families(s, amap, side, style)
        answer = shared_answer(group, visible)
        if answer:
            images = [np.asarray(masked_image(Image.fromarray(scenes.render(s, side)), amap, (side, side)))
                      for s, amap in zip(group, maps)]
            return images, ANSWER_PREFIX + answer
    raise RuntimeError("no top-k example with a visible shared value in 100 draws")
