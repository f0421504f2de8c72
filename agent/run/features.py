"""Parse feature lists such as ``0-9,42,100-120`` or ``all``."""

from __future__ import annotations

MAX_UNSIZED = 1 << 22
"""Most features a list may name while the SAE's size is unknown (more than any SAE this tool loads
has), so that a typo like ``0-999999999`` is refused instead of filling memory."""


class FeatureSpecError(ValueError):
    """A feature list could not be parsed or falls outside the SAE."""


def parse_ranges(spec: str) -> list[tuple[int, int]]:
    """The inclusive (first, last) ranges ``spec`` names, unexpanded (``all`` is not a range here)."""
    text = spec.strip().lower()
    if not text:
        raise FeatureSpecError("empty feature list: use e.g. 0-9,42,100-120 or all")
    ranges: list[tuple[int, int]] = []
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
        ranges.append((lo, hi))
    if not ranges:
        raise FeatureSpecError(f"feature list {spec!r} names no features")
    return ranges


def check_ranges(ranges: list[tuple[int, int]], n_features: int | None) -> None:
    """Refuse ids at or past ``n_features`` (a typo is never silently dropped) and, with the size
    unknown, lists longer than MAX_UNSIZED; both before a single id is expanded."""
    if n_features is not None:
        bad: set[int] = set()
        for lo, hi in ranges:  # the first six past the end of each range hold the six smallest overall
            bad.update(range(max(lo, n_features), min(hi, max(lo, n_features) + 5) + 1))
        if bad:
            shown = sorted(bad)
            text = ", ".join(map(str, shown[:5])) + (" ..." if len(shown) > 5 else "")
            raise FeatureSpecError(f"features {text} are out of range: this SAE has features 0-{n_features - 1}")
        return
    total = sum(hi - lo + 1 for lo, hi in ranges)
    if total > MAX_UNSIZED:
        raise FeatureSpecError(f"feature list names {total:,} features, more than any SAE has "
                               f"({MAX_UNSIZED:,} at most): narrow the range")


def parse_features(spec: str, n_features: int | None = None) -> list[int]:
    """Sorted unique feature ids from ``spec``; ``all`` needs ``n_features``.

    Ranges are inclusive on both ends. Ids at or past ``n_features`` are an error, so a typo is
    never silently dropped; ranges are checked before they are expanded.
    """
    if spec.strip().lower() == "all":
        if n_features is None:
            raise FeatureSpecError("'all' needs to know how many features the SAE has")
        return list(range(n_features))
    ranges = parse_ranges(spec)
    check_ranges(ranges, n_features)
    out: set[int] = set()
    for lo, hi in ranges:
        out.update(range(lo, hi + 1))
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
