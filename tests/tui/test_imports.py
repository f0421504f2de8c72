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


def test_only_the_cli_imports_the_app() -> None:
    """Screens and widgets reach the app through tui.screens.host, so nothing imports tui.app in a circle."""
    import ast
    from pathlib import Path

    import tui

    root = Path(tui.__file__).parent
    importers = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if "tui.app" in names:
                importers.append(path.relative_to(root).as_posix())
    assert importers == ["cli.py"]
