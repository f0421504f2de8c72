"""A folder of good images with every kind of unreadable file between them (shared by the top-k tests)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

BAD = {
    "bad_big.png": "too large (12000x10000 pixels)",
    "bad_bomb.png": "too large (400000000 pixels)",
    "bad_empty.png": "empty file",
    "bad_random.png": "not an image",
    "bad_text.png": "not an image",
    "bad_truncated.jpg": "truncated",
}
"""The unreadable files and the reason a collection gives for each."""


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` (a decompression bomb, as PIL sees it)."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:33] = ihdr + struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


def write_hostile_folder(root: Path, n_good: int = 8, seed: int = 0) -> Path:
    """``n_good`` random PNGs named good_XX.png and the BAD files: in name order, two whole batches of 3
    unreadable images come first, one lies between the good ones and one comes last."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n_good):
        Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)).save(root / f"good_{i:02d}.png")
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (root / "bad_big.png").write_bytes(bomb_png(12000, 10000))  # over PIL's limit, under its refusal
    (root / "bad_bomb.png").write_bytes(bomb_png(20000, 20000))
    (root / "bad_empty.png").write_bytes(b"")
    (root / "bad_random.png").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (root / "bad_text.png").write_text("not an image at all\n")
    (root / "bad_truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (root / "good_03_zz_bad.png").write_bytes(b"")  # one more between the good ones
    (root / "zz_last.gif").write_text("GIF89a but not really")
    return root


def clean_copy(hostile: Path, dest: Path) -> Path:
    """The good images of a hostile folder alone."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(hostile.glob("good_??.png")):
        (dest / p.name).write_bytes(p.read_bytes())
    return dest
