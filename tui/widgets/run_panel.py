"""The live line of a run: features, rounds, probes/s, tokens and cost."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


def stats_text(state: str, title: str, s: Any) -> Text:
    if s is None:
        if state == "idle":
            return Text("no run yet · s: new run", style="dim")
        return Text(f"{title}: {state} (the model loads first if needed)", style="dim")
    out = Text()
    out.append(f"{title} ", style="bold")
    done = s.done + s.failed
    out.append(f"{done}/{max(s.to_run, 1)} ")
    if s.failed:
        out.append(f"({s.failed} failed) ", style="red")
    if s.skipped:
        out.append(f"+{s.skipped} kept ", style="dim")
    if s.in_flight:
        rounds = Counter(s.in_flight.values())
        spread = " ".join(f"r{r}:{n}" for r, n in sorted(rounds.items()))
        out.append(f"· {len(s.in_flight)} in flight" + (f" ({spread})" if len(rounds) <= 2 else "") + " ")
    out.append(f"· {s.rounds} rounds · {s.probes_per_s:.1f} probes/s · {s.tokens:,} tok")
    if s.cost_usd is not None:
        out.append(f" · ${s.cost_usd:.4f}")
    out.append(f" · {s.elapsed:.0f}s")
    if state not in ("idle", "running"):
        out.append(f" · {state}", style="bold yellow")
    if s.last_error:
        out.append(f"\nlast error: {s.last_error}", style="red")
    return out


class RunPanel(Widget):
    """Shows the latest RunStats; the app assigns ``stats`` and ``state`` as events arrive."""

    stats: reactive[Any] = reactive(None, always_update=True)
    state: reactive[str] = reactive("idle")
    run_title: reactive[str] = reactive("run")

    def render(self) -> Text:
        return stats_text(self.state, self.run_title, self.stats)
