"""tui/ imports no torch at module level (the app opens on a store without loading a model)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import importlib, pkgutil, sys
import tui
for m in pkgutil.walk_packages(tui.__path__, "tui."):
    importlib.import_module(m.name)
print(",".join(n for n in ("torch", "transformers", "openai") if n in sys.modules))
"""


def test_tui_modules_import_without_torch() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
