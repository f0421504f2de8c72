"""Parse feature lists such as ``0-9,42,100-120`` or ``all``."""

from __future__ import annotations


class FeatureSpecError(ValueError):
    """A feature list could not be parsed or falls outside the SAE."""


def parse_features(spec: str, n_features: int | None = None) -> list[int]:
    """Sorted unique feature ids from ``spec``; ``all`` needs ``n_features``.

    Ranges are inclusive on both ends. Ids at or past ``n_features`` are an error, so a typo is
    never silently dropped.
    """
    text = spec.strip().lower()
    if not text:
        raise FeatureSpecError("empty feature list: use e.g. 0-9,42,100-120 or all")
    if text == "all":
        if n_features is None:
            raise FeatureSpecError("'all' needs to know how many features the SAE has")
        return list(range(n_features))
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise FeatureSpecError(f"bad feature list item {part!r}: use ids and ranges like 0-9,42,100-120") from None
        if hi < lo:
            raise FeatureSpecError(f"range {part!r} runs backwards: write {hi}-{lo}")
        out.update(range(lo, hi + 1))
    if not out:
        raise FeatureSpecError(f"feature list {spec!r} names no features")
    if n_features is not None:
        bad = sorted(f for f in out if f >= n_features)
        if bad:
            shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
            raise FeatureSpecError(f"features {shown} are out of range: this SAE has features 0-{n_features - 1}")
    return sorted(out)


def format_features(features: list[int]) -> str:
    """The inverse of ``parse_features`` for display: ``[0,1,2,5]`` -> ``0-2,5``."""
    if not features:
        return ""
    parts: list[str] = []
    start = prev = features[0]
    for f in features[1:] + [None]:  # type: ignore[list-item]
        if f is not None and f == prev + 1:
            prev = f
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if f is not None:
            start = prev = f
    return ",".join(parts)
