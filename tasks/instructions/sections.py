"""The report sections of the instruction-synthesis flows: how many evolved questions / new instructions each round
kept, per operation, and how many each filter eliminated (the filters are the recipe's quality control, so their
counts belong next to the result). Imported by the flows that run these stages, as tasks/registry/sections.py is."""
from __future__ import annotations

from pathlib import Path

from tasks.core.lineage import LineageEntry
from tasks.core.store import ArtifactStore
from tasks.evaluation.report_sections import Section, register_section, table


def _counts(title: str, counts: dict) -> list[str]:
    rows = [{"name": k, "n": v} for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    return ["", f"**{title}**", ""] + table(rows, {"": lambda r: r["name"], "count": lambda r: str(r["n"])})


@register_section("evolved_dataset")
def evolution(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """Evol-Instruct: per round, per operation (kept / eliminated) and per elimination filter."""
    m = store.manifest(entries[-1].ref)["metrics"]
    rows = [{"operation": op} | n for op, n in sorted(m["by_operation"].items())]
    markdown = table(rows, {"operation": lambda r: r["operation"], "kept": lambda r: str(r["kept"]),
                            "eliminated": lambda r: str(r["eliminated"])})
    markdown += ["", "**Per round**", ""] + table(
        [{"round": r} | n for r, n in m["per_round"].items()],
        {"round": lambda r: r["round"], "kept": lambda r: str(r["kept"]), "eliminated": lambda r: str(r["eliminated"])})
    markdown += _counts("Eliminated by filter", m["eliminated_by"])
    if m.get("example"):
        e = m["example"]
        markdown += ["", f"Example (round {e['round']}, {e['operation']}): {e['question'][:300]!r}"]
    return Section(f"Evol-Instruct: {m['kept']} kept, {m['eliminated']} eliminated", rows, markdown)


@register_section("instruction_dataset")
def self_instruct(entries: list[LineageEntry], store: ArtifactStore, out: Path) -> Section:
    """Self-Instruct: the instructions kept per round, the rejections per filter, the SFT rows written."""
    m = store.manifest(entries[-1].ref)["metrics"]
    rows = [{"round": r} | n for r, n in m["per_round"].items()]
    markdown = table(rows, {"round": lambda r: r["round"], "kept (with a response)": lambda r: str(r["kept"]),
                            "rejected": lambda r: str(r["rejected"])})
    markdown += _counts("Rejected by filter", m["rejected_by"] | {"empty_response": m["empty_response"]})
    markdown += ["", f"SFT rows: {m['train_rows']} ({m['generated']} generated, {m['seeds']} seeds)"]
    if m.get("example"):
        markdown += ["", f"Example instruction: {m['example']['instruction'][:300]!r}"]
    return Section("Self-Instruct", rows, markdown)
