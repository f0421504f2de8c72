"""Top-k and hybrid descriptions for the loop: the describer over steering.topk.describe, and its batched, cached service."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from agent.run.config import HYBRID_MULTIPLE
from agent.judges.evidence import ImageEvidence
from agent.run.batcher import EngineFailed, MicroBatcher, Submit
from steering.probes import EvidenceRequest

JUDGE_PICTURE_SIDE = 448
"""Longest side of a picture attached to a judge prompt (a 896 px masked image says no more at 448)."""
# Hybrid strengths the reference analysis chose by a validation sweep: (SAE repository, layer) -> strength.
REFERENCE_HYBRID = {("google_gemma-3-4b-it-saes", 16): 50.0}


class Describer(Protocol):
    """Makes top-k / hybrid descriptions (blocking; called in the engine's thread)."""

    def prepare(self) -> dict[str, Any]:
        """Load what is needed, check it fits the engine, and return the identity that keys the cache."""
        ...

    def describe(self, requests: Sequence[EvidenceRequest],
                 on_result: Callable[[EvidenceRequest, ImageEvidence], None] | None = None) -> list[ImageEvidence]:
        ...

    def pictures(self, feature: int, n: int) -> list[bytes]:
        """PNG bytes of the feature's ``n`` best images, inactive patches black."""
        ...


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def reference_hybrid_strength(sae: str | None, layer: int | None) -> float | None:
    """The reference analysis's hybrid strength where the SAE is the one it was chosen for."""
    parts = str(sae or "").replace("\\", "/").split("/")
    for (repo, at_layer), strength in REFERENCE_HYBRID.items():
        if repo in parts and layer == at_layer:
            return strength
    return None


def default_hybrid_strength(fingerprint: dict[str, Any], norm: float | None) -> tuple[float, str]:
    """(strength, how it was chosen) when the user gave none."""
    ref = reference_hybrid_strength(fingerprint.get("sae"), fingerprint.get("layer"))
    if ref is not None:
        return ref, "the reference analysis's strength for this SAE and layer"
    if norm is None or not norm > 0:
        raise RuntimeError("cannot choose a hybrid strength (no hidden-state norm): pass --hybrid-strength")
    return round(HYBRID_MULTIPLE * norm, 2), f"{HYBRID_MULTIPLE:g} x the hidden-state norm {norm:.4g}"


def describer_for(engine: Any, root: str | Path) -> Describer:
    """The describer of a run on ``engine``: the engine's own where it has one (a pool of Ray actors,
    which describes on them: agent.run.ray.images), else a TopKDescriber in this process."""
    own = getattr(engine, "evidence_describer", None)
    return own(root) if callable(own) else TopKDescriber(engine, root)


class TopKDescriber:
    """The real describer: steering.topk.describe over a steering engine and a stored top-k collection."""

    def __init__(self, engine: Any, root: str | Path) -> None:
        self.engine = engine
        self.root = Path(root)
        self._topk: Any = None
        self._fingerprint: dict[str, Any] | None = None

    def _lock(self) -> Any:
        import contextlib

        lock = getattr(self.engine, "lock", None)  # a front end's shared engine (tui LockedEngine)
        return lock if hasattr(lock, "acquire") else contextlib.nullcontext()

    def prepare(self) -> dict[str, Any]:
        from agent.topk import open_topk
        from steering.topk.describe import check_compatible, fingerprint

        if self._fingerprint is None:
            self._topk = open_topk(self.root)
            check_compatible(self.engine, self._topk)
            self._fingerprint = fingerprint(self.engine, self._topk)
        return self._fingerprint

    def describe(self, requests: Sequence[EvidenceRequest],
                 on_result: Callable[[EvidenceRequest, ImageEvidence], None] | None = None) -> list[ImageEvidence]:
        from steering.topk.describe import describe

        self.prepare()
        names = self._topk.names

        def convert(res: Any) -> ImageEvidence:
            return ImageEvidence(feature=res.feature, mode=res.mode, strength=float(res.request.strength),
                                 n_images=res.request.n_images, texts=tuple(res.texts),
                                 image_ids=tuple(res.image_ids), image_names=tuple(names[i] for i in res.image_ids),
                                 note=str(res.extra.get("note", "")))

        def each(res: Any) -> None:
            if on_result is not None:
                on_result(res.request, convert(res))

        with self._lock():
            out = describe(self.engine, self._topk, list(requests), on_result=each)
        if on_result is not None:  # rows without images never reach describe's callback
            for res in out:
                if not res.texts:
                    each(res)
        return [convert(r) for r in out]

    def pictures(self, feature: int, n: int) -> list[bytes]:
        self.prepare()
        return masked_pngs(self.root, feature, n)


def masked_pngs(root: str | Path, feature: int, n: int) -> list[bytes]:
    """PNG bytes of the feature's ``n`` best images in the collection at ``root``, inactive patches black,
    at most JUDGE_PICTURE_SIDE on a side."""
    from agent.topk import feature_views

    out = []
    for view in feature_views(root, feature, n, "masked"):
        img = view.image
        if max(img.size) > JUDGE_PICTURE_SIDE:
            img = img.copy()
            img.thumbnail((JUDGE_PICTURE_SIDE, JUDGE_PICTURE_SIDE))
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        out.append(buf.getvalue())
    return out


class ImageCache(Protocol):
    def get_image_evidence(self, key: str) -> ImageEvidence | None: ...

    def put_image_evidence(self, key: str, result: ImageEvidence) -> None: ...


class ImageEvidenceService:
    """Async front of a describer for every feature loop of a run: cache, de-duplication, batching."""

    def __init__(self, describer: Describer, fingerprint: dict[str, Any], submit: Submit,
                 cache: ImageCache | None = None, *, read_cache: bool = True, gather_s: float = 0.02,
                 max_batch: int = 64) -> None:
        self.describer = describer
        self.fingerprint = fingerprint
        self.submit = submit
        """Queues a blocking function for the engine's thread (ProbeService.submit)."""
        self._batcher: MicroBatcher[EvidenceRequest, ImageEvidence] = MicroBatcher(
            describer.describe, self.key, submit,
            lookup=(lambda key, _request: cache.get_image_evidence(key)) if cache is not None and read_cache else None,
            store=cache.put_image_evidence if cache is not None else None, failure="the top-k description failed",
            max_batch=max_batch, gather_s=gather_s, name="image-evidence")

    @property
    def cached_hits(self) -> int:
        return self._batcher.cached_hits

    def key(self, request: EvidenceRequest) -> str:
        return request.key(self.fingerprint)

    async def get(self, requests: Sequence[EvidenceRequest]) -> list[ImageEvidence]:
        """Descriptions for ``requests`` in order: from the store or from a shared engine call."""
        return await self._batcher.get(requests)

    async def pictures(self, feature: int, n: int) -> list[str]:
        """Data URLs of the feature's masked top images (for judges that read images)."""
        try:
            pngs = await self.submit(self.describer.pictures, feature, n)
        except Exception as exc:  # noqa: BLE001 - reported to the feature's loop
            raise EngineFailed(f"drawing the top images failed: {exc}") from exc
        return [png_data_url(p) for p in pngs]

    async def close(self) -> None:
        """Stop dispatching; a description call still queued in the engine's thread is dropped."""
        await self._batcher.close(finish_current=False)
