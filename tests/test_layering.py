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


def _loaded(pkg: str, forbidden: list[str], later: str = "") -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", CHECK.format(pkg=pkg, forbidden=forbidden, later=later)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_steering_never_imports_textual_or_agent_and_its_runtime_never_the_toy_build() -> None:
    found = _loaded("steering", ["textual", "agent", "tui"], later="steering.toy.build")
    assert found == {"forbidden": [], "early": []}


def test_agent_never_imports_textual() -> None:
    assert _loaded("agent", ["textual", "tui"])["forbidden"] == []


def test_agent_top_level_does_not_import_torch() -> None:
    out = subprocess.run([sys.executable, "-c", "import agent, agent.cli, sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


PROJECT = ("steering", "agent", "tui")
LAYERS = {"steering": ("agent", "tui", "textual"), "agent": ("tui", "textual"), "tui": ("steering",)}
"""Package -> what it never imports, at any depth: tui -> agent -> steering, and no textual below the UI."""
BUILD = "steering.toy.build"
BUILD_LAUNCHERS = {"steering.toy.measure"}
"""``python -m steering.toy.measure``, the name the benchmark's issue gives the command, runs the build's
measurement (build/measure.py). Nothing imports a launcher, so the runtime never loads the build through it."""
FRONT_DOOR = "agent.cli"
FRONT_DOOR_KNOWN = {("tui.cli", "agent.cli.args")}
"""Front door to front door, by design: steer-tui's option parser declares steer-agent's flag groups (the model,
the judge) from agent.cli.args rather than again. Below the front doors nothing reaches agent.cli: both stand on
agent.session.Session (issue 28, "One composition root")."""
OPTION_PARSERS = ("agent.cli", "tui.cli")
"""The front doors (steer-agent, steer-tui): with ``python -m`` entry points, the only modules that parse options."""


def _modules() -> dict[str, Path]:
    """Every module of the project: its dotted name (a package's is its own) -> its file."""
    out: dict[str, Path] = {}
    for pkg in PROJECT:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), str(MODULES[name]))


def _imports(name: str) -> list[tuple[str, int]]:
    """(what is imported, line) for every import of module ``name`` at any depth (functions and
    TYPE_CHECKING blocks too), relative imports resolved: ``import a.b`` names a.b; ``from p import x``
    names p.x where that is a project module, else p."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out += [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno)
                    for alias in node.names]
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _module_of(imported: str) -> str | None:
    """The project module an imported name lies in (None: outside the project)."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported or None


def _graph() -> dict[str, dict[str, int]]:
    """Module -> {project module it imports: first line}; a package's imports of its own submodules (its
    re-exports) are left out."""
    graph: dict[str, dict[str, int]] = {}
    for name in MODULES:
        edges = graph.setdefault(name, {})
        for imported, line in _imports(name):
            target = _module_of(imported)
            if target is None or target == name or (MODULES[name].name == "__init__.py" and _within(target, name)):
                continue
            edges.setdefault(target, line)
    return graph


def _reach(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycles(graph: dict[str, dict[str, int]]) -> list[tuple[str, ...]]:
    """The modules on a circle, grouped by circle (those that reach each other)."""
    reach = {name: _reach(graph, name) for name in graph}
    return sorted({tuple(sorted(n for n in reach[m] if m in reach[n])) for m in graph if m in reach[m]})


def test_no_import_cycle_at_any_depth() -> None:
    """No circle among the project's modules, counting imports inside functions: each names its edges."""
    graph = _graph()
    cycles = [[f"{a} -> {b} (line {line})" for a in circle for b, line in graph[a].items() if b in circle]
              for circle in _cycles(graph)]
    assert cycles == [], "\n\n".join("\n".join(c) for c in cycles)


def test_no_upward_import_at_any_depth() -> None:
    """tui -> agent -> steering, steering's runtime never reaches the toy build, and nothing below the
    front doors reaches steer-agent's CLI; imports inside functions count."""
    bad = []
    for name in MODULES:
        for imported, line in _imports(name):
            where = f"{name} -> {imported} (line {line})"
            if any(_within(imported, top) for top in LAYERS.get(name.split(".")[0], ())):
                bad.append(where)
            elif _within(imported, BUILD) and not _within(name, BUILD) and name not in BUILD_LAUNCHERS:
                bad.append(where)
            elif _module_of(imported) in BUILD_LAUNCHERS:
                bad.append(where)
            elif (_within(imported, FRONT_DOOR) and not _within(name, FRONT_DOOR)
                  and (name, _module_of(imported)) not in FRONT_DOOR_KNOWN):
                bad.append(where)
    assert bad == [], "\n".join(bad)


def _entry_points() -> set[str]:
    """``python -m`` entry points: every ``__main__`` module, each module an ``if __name__ == "__main__":``
    block runs, and the module a ``__main__`` takes its ``main`` from."""
    out = set()
    for name in MODULES:
        tree = _tree(name)
        if name.endswith(".__main__"):
            out.add(name)
            out |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                    and any(alias.name == "main" for alias in node.names)}
        elif any(isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'
                 for node in tree.body):
            out.add(name)
    return out


def test_only_front_doors_and_entry_points_parse_options() -> None:
    """Parsed options stop at the front doors (agent/cli/, tui/cli.py) and ``python -m`` entry points: below
    them, commands and the TUI pass typed requests (agent.session); imports inside functions count."""
    allowed = _entry_points()
    users = sorted(name for name in MODULES if any(_within(imported, "argparse") for imported, _ in _imports(name))
                   and name not in allowed and not any(_within(name, door) for door in OPTION_PARSERS))
    assert users == [], "\n".join(users)


def test_every_command_opens_a_session() -> None:
    """Each `steer-agent` command (a module of agent/cli/ that registers a subcommand) reaches the world, the
    store and the judge through agent.session.Session, none by its own path."""
    commands = sorted(name for name in MODULES if _within(name, "agent.cli")
                      and "def add_parser" in MODULES[name].read_text(encoding="utf-8"))
    assert "agent.cli.judge_check" in commands and "agent.cli.run" in commands, commands
    without = [name for name in commands
               if not any(_within(imported, "agent.session") for imported, _ in _imports(name))]
    assert without == [], without
