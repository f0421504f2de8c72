"""Dependencies point one way: the core imports without the UI, agent/ without torch, tui/ without steering."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Imports every module of {pkg} (packages first, so a walk never skips one), in two rounds: first all
# but those under {later!r}, noting which of them are loaded by then; then the rest.
CHECK = """
import importlib, json, pkgutil, sys
import {pkg}

def walk(path, prefix, later):
    for m in pkgutil.iter_modules(path, prefix):
        if m.name.endswith("__main__") or (later and m.name.startswith(later)):
            continue
        module = importlib.import_module(m.name)
        if m.ispkg:
            walk(module.__path__, m.name + ".", later)

walk({pkg}.__path__, "{pkg}.", {later!r})
early = sorted(name for name in sys.modules if {later!r} and name.startswith({later!r}))
walk({pkg}.__path__, "{pkg}.", "")
print(json.dumps({{"forbidden": [n for n in {forbidden} if n in sys.modules], "early": early}}))
"""


def _imports(pkg: str, forbidden: list[str], later: str = "") -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", CHECK.format(pkg=pkg, forbidden=forbidden, later=later)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_steering_never_imports_textual_or_agent_and_its_runtime_never_the_toy_build() -> None:
    found = _imports("steering", ["textual", "agent", "tui"], later="steering.toy.build")
    assert found == {"forbidden": [], "early": []}


def test_agent_never_imports_textual() -> None:
    assert _imports("agent", ["textual", "tui"])["forbidden"] == []


def test_agent_top_level_does_not_import_torch() -> None:
    out = subprocess.run([sys.executable, "-c", "import agent, agent.cli, sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


def _imported_names(path: Path) -> list[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names, at any depth (functions too)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_tui_never_imports_steering() -> None:
    """tui -> agent -> steering: the UI reaches the core only through agent/, even inside functions."""
    bad = [f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / "tui").rglob("*.py"))
           for name in _imported_names(path) if name == "steering" or name.startswith("steering.")]
    assert bad == []


def test_only_the_cli_parses_arguments() -> None:
    """Parsed options stop at agent/cli/: below it, commands and the TUI pass typed requests (agent.plan)."""
    root = Path(__file__).resolve().parents[1] / "agent"
    users = [str(p.relative_to(root)) for p in root.rglob("*.py")
             if "cli" not in p.relative_to(root).parts[:1] and "argparse" in p.read_text(encoding="utf-8")]
    assert users == []
