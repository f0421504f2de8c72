"""Dependencies point one way: the core imports without the UI, and agent/ without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import sys, importlib, pkgutil
import {pkg}
for m in pkgutil.walk_packages({pkg}.__path__, "{pkg}."):
    if ".toy.build" in m.name or m.name.endswith("__main__"):
        continue
    importlib.import_module(m.name)
bad = [name for name in {forbidden} if name in sys.modules]
print(",".join(bad))
"""


def _imports(pkg: str, forbidden: list[str]) -> str:
    out = subprocess.run([sys.executable, "-c", CHECK.format(pkg=pkg, forbidden=forbidden)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_steering_never_imports_textual_or_agent() -> None:
    assert _imports("steering", ["textual", "agent", "tui"]) == ""


def test_agent_never_imports_textual() -> None:
    assert _imports("agent", ["textual", "tui"]) == ""


def test_agent_top_level_does_not_import_torch() -> None:
    out = subprocess.run([sys.executable, "-c", "import agent, agent.cli, sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_only_the_cli_parses_arguments() -> None:
    """Parsed options stop at agent/cli/: below it, commands and the TUI pass typed requests (agent.plan)."""
    root = Path(__file__).resolve().parents[1] / "agent"
    users = [str(p.relative_to(root)) for p in root.rglob("*.py")
             if "cli" not in p.relative_to(root).parts[:1] and "argparse" in p.read_text(encoding="utf-8")]
    assert users == []
