"""Activation tests, the input side of a feature: read the feature's activation on images that hold a
hypothesis and on images that break it.

Two kinds of test:

- **render** (worlds that can draw their scenes: the toy world): one attribute family at a time. A fixed
  set of base scenes, drawn in the world's own mix of objects and fields, is rendered once per value of
  the family, everything else unchanged (a paired design: each base scene answers "which value makes
  the feature fire most?"). The result holds, per value, the mean activation, the share of the pool's
  top activations that carry it, and the share of base scenes in which it wins.
- **edit** (any world whose top-activating images are at hand): the feature's top images before and
  after an edit that removes one kind of information (``desaturate``, ``hue``, ``blur``, ``rescale``,
  ``mask`` outside the heatmap); the result holds the mean activation before and after.

A scene's activation is its mean over the patch grid, as top-k collection and the toy world's truth
score it. The pools do not depend on the feature: one encoder pass per family serves every feature of
a run (``Tester`` keeps them). This module imports no agent code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RENDER_FAMILIES = ("colour", "shape", "pattern", "size", "kind")
"""The families a render test varies (``kind``: one object vs the same colour and texture filling the image)."""
EDITS = ("desaturate", "hue", "blur", "rescale", "mask")
"""The edits an edit test applies to the feature's top images."""
EDIT_MEANING = {
    "desaturate": "colour removed (grey levels kept)",
    "hue": "hue rotated by half a turn (colour changed, shape and texture kept)",
    "blur": "blurred (fine texture and pattern removed)",
    "rescale": "shrunk to half its size on white (size changed)",
    "mask": "everything outside the feature's heatmap whitened (context removed)",
}
BASE_SCENES = 128
"""Base scenes per render test: each is rendered once per value of the family."""
TOP_SHARE_N = 20
"""How many of the pool's best scenes the top shares count (as the toy world's truth counts its top 20)."""
SEED = 91_000
"""Seed stream of the base scenes (apart from every build and eval stream)."""
SHAPE_AREA = {"square": 1.0, "circle": math.pi / 4, "triangle": 0.5, "cross": 2 / 2.6 - 1 / 2.6 ** 2}
"""Each shape's area as a share of the square of its extent (steering.toy.scenes.shape_mask)."""
RENDER_VERSION = 2
EDIT_VERSION = 1


@dataclass(frozen=True)
class ActivationTest:
    """One test of one feature (the request a judge makes, the key its result is cached under)."""

    feature: int
    kind: str
    """``render`` or ``edit``."""
    family: str | None = None
    """The family a render test varies."""
    edit: str | None = None
    """The edit an edit test applies."""
    hold: tuple[tuple[str, str], ...] = ()
    """Render: (family, value) pairs every scene of the pool carries while ``family`` varies (a hypothesis
    held fixed), sorted; empty: the world's own mix."""

    def spec(self) -> dict[str, Any]:
        d: dict[str, Any] = {"feature": self.feature, "kind": self.kind}
        if self.family is not None:
            d["family"] = self.family
        if self.hold:
            d["hold"] = dict(self.hold)
        if self.edit is not None:
            d["edit"] = self.edit
        return d

    def key(self, fingerprint: dict[str, Any]) -> str:
        """The cache key: the test, its version and what the activation depends on (model, SAE, layer)."""
        world = {k: fingerprint.get(k) for k in ("model", "revision", "dtype", "sae", "sae_revision", "layer", "tests")}
        version = RENDER_VERSION if self.kind == "render" else EDIT_VERSION
        text = json.dumps({"test": self.spec(), "version": version, "world": world}, sort_keys=True, default=str)
        return "test:" + hashlib.sha256(text.encode()).hexdigest()

    def name(self) -> str:
        if self.kind != "render":
            return f"edit {self.edit}"
        held = ", ".join(f"{f} {v}" for f, v in self.hold)
        return f"render {self.family}" + (f" holding {held}" if held else "")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActivationTest:
        hold = tuple(sorted((str(f), str(v)) for f, v in (d.get("hold") or {}).items()))
        return cls(feature=int(d["feature"]), kind=str(d["kind"]), family=d.get("family"), edit=d.get("edit"),
                   hold=hold)


@dataclass
class ActivationTestResult:
    """What a test read. Render: ``values`` value -> mean activation, ``top_share`` value -> share of the
    pool's TOP_SHARE_N best scenes, ``wins`` value -> share of the decisive base scenes where the value gives
    the highest activation. Edit: ``values`` has ``before`` and ``after``."""

    test: ActivationTest
    values: dict[str, float] = field(default_factory=dict)
    top_share: dict[str, float] = field(default_factory=dict)
    wins: dict[str, float] = field(default_factory=dict)
    n_images: int = 0
    n_top: int = 0
    """Scenes the top shares count (fewer than TOP_SHARE_N when fewer are active)."""
    peak: float = 0.0
    """The highest activation in the pool (the feature's scale, for the reader)."""
    error: str | None = None
    """Why the test could not run (no top images, a world that cannot render), else None."""

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.test.spec(), "values": self.values, "top_share": self.top_share, "wins": self.wins,
                "n_images": self.n_images, "n_top": self.n_top, "peak": self.peak, "error": self.error}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActivationTestResult:
        return cls(test=ActivationTest.from_dict(d["test"]),
                   values={str(k): float(v) for k, v in (d.get("values") or {}).items()},
                   top_share={str(k): float(v) for k, v in (d.get("top_share") or {}).items()},
                   wins={str(k): float(v) for k, v in (d.get("wins") or {}).items()},
                   n_images=int(d.get("n_images", 0)), n_top=int(d.get("n_top", 0)),
                   peak=float(d.get("peak", 0.0)), error=d.get("error"))

    def line(self) -> str:
        """One line for a judge or a reviewer."""
        t = self.test
        if self.error:
            return f"{t.name()}: not run ({self.error})"
        if t.kind == "edit":
            before, after = self.values.get("before", 0.0), self.values.get("after", 0.0)
            change = f"{(after - before) / before:+.0%}" if before > 0 else "n/a"
            return (f"edit {t.edit} ({EDIT_MEANING.get(str(t.edit), '')}): mean activation {before:.3g} -> "
                    f"{after:.3g} ({change}) over {self.n_images} top images")
        order = sorted(self.values, key=lambda v: -self.values[v])
        parts = [f"{v} {self.values[v]:.3g} (top {self.top_share.get(v, 0.0):.0%}, wins {self.wins.get(v, 0.0):.0%})"
                 for v in order]
        return f"{t.name()} over {self.n_images} scenes, peak {self.peak:.3g}: " + "; ".join(parts)


# ----------------------------------------------------------------------------- render pools (the toy world)

def family_values(family: str) -> tuple[str, ...]:
    from steering.toy import scenes

    if family == "kind":
        return ("object", "field")
    return scenes.FAMILIES[family]


def base_scenes(n: int = BASE_SCENES, seed: int = SEED, hold: Sequence[tuple[str, str]] = ()) -> list[Any]:
    """``n`` scenes in the world's mix of objects and fields (no empty image: it carries no value), each
    carrying the ``hold`` values (a held kind first, so that an object keeps a held shape or size)."""
    from steering.toy import scenes

    rng = np.random.default_rng(seed)
    p = scenes.KIND_WEIGHTS["object"] / (scenes.KIND_WEIGHTS["object"] + scenes.KIND_WEIGHTS["field"])
    kind = dict(hold).get("kind")
    if kind is None and any(f in ("shape", "size") for f, _ in hold):
        kind = "object"  # only an object has a shape or a size
    out = []
    for _ in range(n):
        s = scenes.sample_scene(rng, kind or ("object" if rng.random() < p else "field"))
        for f, v in sorted(hold, key=lambda fv: fv[0] != "kind"):
            s = variant(s, f, v)
        out.append(s)
    return out


def variant(scene: Any, family: str, value: str) -> Any:
    """``scene`` with ``family`` set to ``value``, all else kept (unchanged where the scene lacks the family:
    a field has no shape or size). The kind family turns an object into a field of the same colour and
    texture, and a field into a mid-sized object of the same colour and texture."""
    from dataclasses import replace

    from steering.toy import scenes

    if family == "kind":
        if scene.kind == value:
            return scene
        if value == "field":
            return replace(scene, kind="field", shape=None, size=None, cx=0.5, cy=0.5, extent=0.0)
        lo, hi = scenes.SIZE_EXTENT["large"]
        return replace(scene, kind="object", shape="square", size="large", cx=0.5, cy=0.5, extent=(lo + hi) / 2)
    if scene.kind != "object" and family in ("shape", "size"):
        return scene
    if family == "shape":
        if scene.shape == value:
            return scene
        # The same area as the base scene's shape (a cross or a triangle covers less than a square of the same
        # extent, and a feature's mean activation grows with the area it fires on): only the outline changes.
        extent = scene.extent * math.sqrt(SHAPE_AREA[scene.shape] / SHAPE_AREA[value])
        extent = min(extent, 0.95)
        margin = extent / 2 + 0.02
        cx, cy = (min(max(c, margin), 1 - margin) for c in (scene.cx, scene.cy))
        return replace(scene, shape=value, extent=extent, cx=cx, cy=cy)
    if family == "size":
        if scene.size == value:
            return scene
        (lo0, hi0), (lo1, hi1) = scenes.SIZE_EXTENT[scene.size], scenes.SIZE_EXTENT[value]
        extent = lo1 + (scene.extent - lo0) / (hi0 - lo0) * (hi1 - lo1)
        margin = extent / 2 + 0.02
        cx, cy = (min(max(c, margin), 1 - margin) for c in (scene.cx, scene.cy))
        return replace(scene, size=value, extent=extent, cx=cx, cy=cy)
    return replace(scene, **{family: value})


def render_pool(family: str, n: int = BASE_SCENES, seed: int = SEED,
                hold: Sequence[tuple[str, str]] = ()) -> tuple[list[Any], list[str]]:
    """The family's pool: every base scene once per value, base-major ([base0 v0, base0 v1, ...]); and each
    pool scene's value of the family (the base's own value where the variant left it unchanged: a field has
    no shape, and counts as none)."""
    values = family_values(family)
    pool, carried = [], []
    for scene in base_scenes(n, seed, hold):
        for v in values:
            s = variant(scene, family, v)
            pool.append(s)
            carried.append(s.kind if family == "kind" else str(s.attributes().get(family, "")))
    return pool, carried


def summarise_render(test: ActivationTest, acts: np.ndarray, carried: Sequence[str],
                     values: Sequence[str]) -> ActivationTestResult:
    """The render result of one feature from its activations [bases * values] over a pool (base-major)."""
    k = len(values)
    acts = np.asarray(acts, dtype=np.float64)
    grid = acts.reshape(-1, k)
    out = ActivationTestResult(test=test, n_images=int(acts.size), peak=float(acts.max(initial=0.0)))
    carried_grid = np.asarray(carried, dtype=object).reshape(-1, k)
    for j, v in enumerate(values):
        own = grid[:, j][carried_grid[:, j] == v]
        out.values[v] = float(own.mean()) if own.size else 0.0
    active = int((acts > 0).sum())
    n_top = min(TOP_SHARE_N, active)
    out.n_top = n_top
    if n_top:
        top = np.argsort(-acts, kind="stable")[:n_top]
        for v in values:
            out.top_share[v] = sum(1 for i in top if carried[i] == v) / n_top
    # A base scene decides when its variants differ (a field's shape variants are one image) and one of
    # them is active: the value with the highest activation wins it.
    spread = grid.max(1) - grid.min(1)
    scale = max(out.peak, 1e-9)
    decisive = (spread > 0.05 * scale) & (grid.max(1) > 0)
    n_dec = int(decisive.sum())
    for j, v in enumerate(values):
        out.wins[v] = float((grid[decisive].argmax(1) == j).sum() / n_dec) if n_dec else 0.0
    return out


# ----------------------------------------------------------------------------- edits (any tower world)

def edit_image(image: Any, edit: str, heatmap: np.ndarray | None = None) -> Any:
    """``image`` (PIL RGB) with ``edit`` applied; ``heatmap`` [g, g] (the feature's patch activations) for
    ``mask``."""
    from PIL import Image, ImageFilter, ImageOps

    image = image.convert("RGB")
    if edit == "desaturate":
        return ImageOps.grayscale(image).convert("RGB")
    if edit == "hue":
        h, s, v = image.convert("HSV").split()
        h = h.point(lambda x: (x + 128) % 256)
        return Image.merge("HSV", (h, s, v)).convert("RGB")
    if edit == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, image.width / 32)))
    if edit == "rescale":
        w, h = image.size
        small = image.resize((max(1, w // 2), max(1, h // 2)))
        canvas = Image.new("RGB", (w, h), (255, 255, 255))
        canvas.paste(small, (w // 4, h // 4))
        return canvas
    if edit == "mask":
        if heatmap is None or not np.asarray(heatmap).size:
            return image
        hm = np.asarray(heatmap, dtype=np.float32)
        keep = hm > 0.2 * max(float(hm.max()), 1e-9)
        big = np.asarray(Image.fromarray(keep.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)) > 0
        arr = np.asarray(image).copy()
        arr[~big] = 255
        return Image.fromarray(arr)
    raise ValueError(f"unknown edit {edit!r}: use one of {', '.join(EDITS)}")


# ----------------------------------------------------------------------------- the tester

Encode = Callable[[list[Any]], "Any"]
"""PIL images -> per-image, per-patch SAE codes of the features asked for: a callable (images, features) ->
array [images, patches, features]."""


class Tester:
    """Runs activation tests against one (encoder, SAE): render pools are encoded once per family and
    kept (every feature reads its column), edit tests encode a feature's top images before and after."""

    def __init__(self, encode: Callable[[list[Any], Sequence[int]], np.ndarray], *, can_render: bool,
                 image_side: int = 64, top_images: Callable[[int], tuple[list[Any], list[np.ndarray]]] | None = None,
                 base_scenes_n: int = BASE_SCENES) -> None:
        self.encode = encode
        """(PIL images, features) -> codes [images, patches, len(features)]."""
        self.can_render = can_render
        self.image_side = image_side
        self.top_images = top_images
        """feature -> (its top images, their heatmaps [g, g]); None: the world has no top-k collection."""
        self.base_scenes_n = base_scenes_n
        self.topk_identity: str | None = None
        """The top-k collection the edit tests read (its fingerprint), for the cache key."""
        self.pool_dir: Path | None = None
        """Where render pools are kept between runs (one .npy of activations per family and held values, named
        by the world and the pool settings); None: in memory only."""
        self.world_key = ""
        """The world's identity in pool file names (model, SAE, layer and their revisions)."""
        self.encode_arrays: Callable[[list[np.ndarray]], np.ndarray] | None = None
        """Rendered uint8 arrays -> codes of every feature, skipping PIL and the processor (the toy world, whose
        processor only rescales: checked equal when set); None: through ``encode``."""
        self._pools: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[list[str], np.ndarray]] = {}
        """(family, hold) -> (carried values, mean activation [pool, d_sae]) of every feature."""

    def settings(self) -> dict[str, Any]:
        """What changes a result besides the test and the world (part of the cache key)."""
        return {"base_scenes": self.base_scenes_n, "seed": SEED, "top": TOP_SHARE_N, "side": self.image_side,
                "render": RENDER_VERSION, "edit": EDIT_VERSION, "topk": self.topk_identity}

    def kinds(self) -> list[str]:
        """The test kinds this world can run."""
        return (["render"] if self.can_render else []) + (["edit"] if self.top_images is not None else [])

    def _pool(self, family: str, hold: tuple[tuple[str, str], ...]) -> tuple[list[str], np.ndarray]:
        if (family, hold) not in self._pools:
            from PIL import Image

            from steering.toy import scenes

            pool, carried = render_pool(family, self.base_scenes_n, hold=hold)
            acts = self._read_pool(family, hold, len(pool))
            if acts is None:
                arrays = [scenes.render(s, self.image_side) for s in pool]
                codes = (self.encode_arrays(arrays) if self.encode_arrays is not None
                         else self.encode([Image.fromarray(a) for a in arrays], None))
                acts = np.asarray(codes).mean(axis=1).astype(np.float32)  # [images, d_sae]
                self._write_pool(family, hold, acts)
            self._pools[(family, hold)] = (carried, acts)
        return self._pools[(family, hold)]

    def _pool_file(self, family: str, hold: tuple[tuple[str, str], ...]) -> Path | None:
        if self.pool_dir is None:
            return None
        text = json.dumps({"world": self.world_key, "settings": self.settings(), "family": family, "hold": hold},
                          sort_keys=True, default=str)
        return self.pool_dir / f"pool-{hashlib.sha256(text.encode()).hexdigest()[:24]}.npy"

    def _read_pool(self, family: str, hold: tuple[tuple[str, str], ...], n: int) -> np.ndarray | None:
        path = self._pool_file(family, hold)
        if path is None or not path.is_file():
            return None
        try:
            acts = np.load(path, allow_pickle=False)  # a data file: never unpickled
        except (OSError, ValueError):
            return None
        return acts if acts.ndim == 2 and acts.shape[0] == n else None

    def _write_pool(self, family: str, hold: tuple[tuple[str, str], ...], acts: np.ndarray) -> None:
        path = self._pool_file(family, hold)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, acts, allow_pickle=False)
            os.replace(tmp, path)
        except OSError:  # a full or read-only cache: the pool stays in memory
            pass

    def run(self, tests: Sequence[ActivationTest]) -> list[ActivationTestResult]:
        out = []
        for t in tests:
            try:
                out.append(self._run_one(t))
            except Exception as exc:  # noqa: BLE001 - one test fails alone, in one line (an unreadable image)
                out.append(ActivationTestResult(test=t, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        return out

    def _run_one(self, t: ActivationTest) -> ActivationTestResult:
        if t.kind == "render":
            if not self.can_render:
                return ActivationTestResult(test=t, error="this world cannot render scenes; use an edit test")
            if t.family not in RENDER_FAMILIES:
                raise ValueError(f"unknown family {t.family!r}")
            for f, v in t.hold:
                if f not in RENDER_FAMILIES or f == t.family or v not in family_values(f):
                    raise ValueError(f"cannot hold {f} {v} while {t.family} varies")
            carried, acts = self._pool(str(t.family), tuple(sorted(t.hold)))
            if not 0 <= t.feature < acts.shape[1]:
                raise ValueError(f"feature {t.feature} is not in the SAE")
            return summarise_render(t, acts[:, t.feature], carried, family_values(str(t.family)))
        if t.kind == "edit":
            if t.edit not in EDITS:
                raise ValueError(f"unknown edit {t.edit!r}")
            if self.top_images is None:
                return ActivationTestResult(test=t, error="no top-k collection for this world; run steer-agent topk")
            images, heatmaps = self.top_images(t.feature)
            if not images:
                return ActivationTestResult(test=t, error="the feature has no top images")
            edited = [edit_image(im, str(t.edit), hm) for im, hm in zip(images, heatmaps)]
            codes = np.asarray(self.encode(list(images) + edited, [t.feature]))[:, :, 0].mean(axis=1)
            n = len(images)
            before, after = float(codes[:n].mean()), float(codes[n:].mean())
            return ActivationTestResult(test=t, values={"before": before, "after": after}, n_images=n,
                                        peak=float(codes.max(initial=0.0)))
        raise ValueError(f"unknown test kind {t.kind!r}: use render or edit")


def wilson_share_ok(share: float, n: int, lower: float) -> bool:
    """Whether ``share`` of ``n`` has a Wilson lower bound (95%) of at least ``lower``."""
    if n <= 0:
        return False
    k = round(share * n)
    z = 1.96
    p = k / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n) >= lower


# ----------------------------------------------------------------------------- an engine's tester

ENCODE_BATCH = 64


def engine_tester(engine: Any, topk: Any | None = None, n_top_images: int = 5,
                  pool_dir: str | Path | None = None) -> Tester:
    """The tester of a steering engine's (encoder, SAE, layer): render tests where the engine's model is the
    toy world's (it draws the scenes it was trained on), edit tests where ``topk`` (a TopKResult of this
    world) is given."""
    import torch

    from steering.topk.collect import EncoderSpec
    from steering.topk.encode import layer_output

    spec = EncoderSpec.from_vlm(engine.vlm, engine.sae, engine.layer)
    param = next(spec.tower.parameters())

    @torch.no_grad()
    def encode(images: list[Any], features: Sequence[int] | None) -> np.ndarray:
        out = []
        for i in range(0, len(images), ENCODE_BATCH):
            pv = spec.preprocess(images[i:i + ENCODE_BATCH]).to(device=param.device, dtype=param.dtype)
            hidden = layer_output(spec.tower, spec.layers, spec.layer, pv)
            if spec.has_cls:
                hidden = hidden[:, 1:]
            codes = engine.sae.encode(hidden.to(engine.sae.W_enc.dtype))
            if features is not None:
                codes = codes[..., list(features)]
            out.append(codes.float().cpu().numpy())
        return np.concatenate(out)

    top_images = None
    if topk is not None:
        def top_images(feature: int) -> tuple[list[Any], list[np.ndarray]]:
            tops = topk.top(feature, n_top_images)
            return [topk.image(t.id) for t in tops], [t.map.numpy() for t in tops]

    tester = Tester(encode, can_render=is_toy_model(engine.vlm), top_images=top_images)
    if tester.can_render:
        tester.encode_arrays = _array_encoder(spec, engine, param)
    if topk is not None:
        tester.topk_identity = f"{topk.fingerprint()}:{n_top_images}"
    if pool_dir is not None:
        fp = engine.fingerprint()
        tester.pool_dir = Path(pool_dir)
        tester.world_key = json.dumps({k: fp.get(k) for k in ("model", "revision", "dtype", "sae", "sae_revision",
                                                               "layer")}, sort_keys=True, default=str)
    return tester


def _array_encoder(spec: Any, engine: Any, param: Any) -> Callable[[list[np.ndarray]], np.ndarray] | None:
    """Codes of rendered arrays already at the model's size, normalised as the toy processor does (x / 127.5 - 1),
    or None when the processor does something else to a probe image (then PIL and the processor it is)."""
    import torch
    from PIL import Image

    from steering.topk.encode import layer_output

    def pixels(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    probe = (np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3)
    try:
        same = torch.allclose(spec.preprocess([Image.fromarray(probe)]).float(), pixels([probe]), atol=1e-5)
    except Exception:  # noqa: BLE001 - another size or processor: the general path
        same = False
    if not same:
        return None

    @torch.no_grad()
    def encode(arrays: list[np.ndarray]) -> np.ndarray:
        out = []
        for i in range(0, len(arrays), ENCODE_BATCH):
            pv = pixels(arrays[i:i + ENCODE_BATCH]).to(device=param.device, dtype=param.dtype)
            hidden = layer_output(spec.tower, spec.layers, spec.layer, pv)
            if spec.has_cls:
                hidden = hidden[:, 1:]
            out.append(engine.sae.encode(hidden.to(engine.sae.W_enc.dtype)).float().cpu().numpy())
        return np.concatenate(out)

    return encode


def is_toy_model(vlm: Any) -> bool:
    """Whether ``vlm`` is the bundled toy world's model (by content), the one model that can render its scenes."""
    try:
        from steering import toy

        return toy.is_available() and vlm.revision == _toy_revision(str(toy.model_dir()))
    except Exception:  # noqa: BLE001 - no toy world: no render tests
        return False


_REVISIONS: dict[str, str] = {}


def _toy_revision(path: str) -> str:
    from steering.revisions import content_revision

    if path not in _REVISIONS:
        _REVISIONS[path] = content_revision(path)
    return _REVISIONS[path]
