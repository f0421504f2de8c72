"""``python -m steering.toy.measure``: the toy world's figures and the benchmark's gates (the command
the benchmark issue names; the measurement itself lives with the build, in ``build/measure.py``)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    from steering.toy.build.measure import main as measure  # the build, only when asked to measure

    measure(argv)


if __name__ == "__main__":
    main()
