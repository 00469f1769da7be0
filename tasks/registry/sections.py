"""The registry's report sections: each promotion decision (effect, paired interval, McNemar p, verdict) and the
champion's accuracy across rounds and runs (issue 18: the gate's decision must be visible in the report)."""
from __future__ import annotations

import shutil
from pathlib import Path

from tasks.core.lineage import LineageEntry
from tasks.core.store import ArtifactStore
from tasks.evaluation.report_sections import Section, register_section, table


@register_section("promotion_gate")
def promotion(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    rows = [store.manifest(e.ref)["metrics"] | {"round": e.label} for e in entries]
    markdown = table(rows, {
        "gate": lambda r: r["round"], "candidate": lambda r: f"v{r['candidate']} ({r['candidate_acc']:.1%})",
        "champion": lambda r: f"v{r['champion']} ({r['champion_acc']:.1%})",
        "difference [95% CI]": lambda r: f"{100 * r['diff']:+.1f} [{100 * r['ci95'][0]:+.1f}, "
                                         f"{100 * r['ci95'][1]:+.1f}]" if "diff" in r else "",
        "wins / losses": lambda r: f"{r['wins']} / {r['losses']}" if "wins" in r else "",
        "McNemar p": lambda r: f"{r['p_value']:.3g}" if "p_value" in r else "",
        "decision": lambda r: ("promoted" if r["promote"] else "rejected") + f": {r['reason']}"})
    return Section("Promotion gate", rows, markdown)


@register_section("champion_trend")
def trend(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    latest = entries[-1]
    m = store.manifest(latest.ref)["metrics"]
    image = "champion-trend.png"
    shutil.copy(store.local_path(latest.ref) / "trend.png", out / image)
    rows = m["trend"]
    markdown = table(rows, {"crowned": lambda r: str(r["order"]), "version": lambda r: f"v{r['version']}",
                            "held-out accuracy": lambda r: "" if r["accuracy"] is None else f"{r['accuracy']:.1%}"})
    return Section(f"Champion of {m['name']}", rows, markdown + ["", f"![champion trend]({image})"])
