"""Where an artifact came from (issue 18): the graph of stages, data and models behind it, read from the manifests
(each names its inputs), as text and as a PNG. Nothing is recorded for this beyond what `run_stage` writes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tasks.core.store import ArtifactStore


@dataclass
class Node:
    stage: str
    key: str
    summary: str  # a few words from its manifest: model name, rows, accuracy
    depth: int = 0  # longest path from the artifact asked about


@dataclass
class LineageGraph:
    root: tuple[str, str]
    nodes: dict[tuple[str, str], Node] = field(default_factory=dict)
    edges: list[tuple[tuple[str, str], tuple[str, str], str]] = field(default_factory=list)  # (input, output, role)


def lineage_graph(store: ArtifactStore, stage: str, key: str) -> LineageGraph:
    """Every ancestor of (stage, key) through the manifests' inputs, each edge labelled with the input's role."""
    graph = LineageGraph(root=(stage, key))
    todo = [((stage, key), 0)]
    while todo:
        node, depth = todo.pop()
        manifest = store.read_manifest_at(*node)
        if manifest is None:
            raise LookupError(f"no artifact {node[0]}/{node[1][:12]} in {store.spec.url}")
        known = graph.nodes.get(node)
        if known is not None and known.depth >= depth:
            continue
        graph.nodes[node] = Node(node[0], node[1], _summary(manifest), depth)
        for role, ref in manifest.get("inputs", {}).items():
            parent = (ref["stage"], ref["key"])
            if (parent, node, role) not in graph.edges:
                graph.edges.append((parent, node, role))
            todo.append((parent, depth + 1))
    return graph


def _summary(manifest: dict) -> str:
    m = manifest.get("metrics", {})
    parts = [str(m[k]) for k in ("model_name", "flow") if m.get(k)]
    if isinstance(m.get("accuracy"), float):
        parts.append(f"{m.get('metric', 'acc')} {m['accuracy']:.1%}")
    for k in ("rows", "selected", "pairs_train", "steps", "iterations"):
        if isinstance(m.get(k), int):
            parts.append(f"{k}={m[k]}")
    return ", ".join(parts[:3])


def render_text(graph: LineageGraph) -> list[str]:
    """An indented tree from the artifact down to its sources; a node seen before is named, not repeated."""
    inputs: dict[tuple[str, str], list[tuple[tuple[str, str], str]]] = {}
    for parent, child, role in graph.edges:
        inputs.setdefault(child, []).append((parent, role))
    lines, shown = [], set()

    def walk(node: tuple[str, str], role: str, indent: int) -> None:
        n = graph.nodes[node]
        label = f"{'  ' * indent}{role + ': ' if role else ''}{n.stage}/{n.key[:12]}" + (
            f"  ({n.summary})" if n.summary else "")
        if node in shown:
            lines.append(label + "  [above]")
            return
        shown.add(node)
        lines.append(label)
        for parent, parent_role in sorted(inputs.get(node, []), key=lambda x: x[1]):
            walk(parent, parent_role, indent + 1)

    walk(graph.root, "", 0)
    return lines


def render_png(graph: LineageGraph, path: Path) -> None:
    """Sources on the left, the artifact on the right, one column per depth; edges labelled by role."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth_max = max(n.depth for n in graph.nodes.values())
    stages = sorted({n.stage for n in graph.nodes.values()})
    place: dict[tuple[str, str], tuple[float, float]] = {}
    for node, n in sorted(graph.nodes.items(), key=lambda item: (item[1].stage, item[0][1])):
        x, y = depth_max - n.depth, float(stages.index(n.stage))  # a column per depth, a row per kind of stage
        while (x, -y) in place.values():
            y += 0.45
        place[node] = (x, -y)
    height = max(-y for _, y in place.values()) + 1
    fig, ax = plt.subplots(figsize=(2.2 * (depth_max + 1), 1.0 + 0.9 * height))
    for parent, child, role in graph.edges:
        (x0, y0), (x1, y1) = place[parent], place[child]
        ax.annotate("", (x1 - 0.3, y1), (x0 + 0.3, y0), arrowprops={"arrowstyle": "->", "color": "0.6",
                                                                     "connectionstyle": "arc3,rad=0.12"})
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, role, fontsize=6, color="0.4", ha="center")
    for node, (x, y) in place.items():
        n = graph.nodes[node]
        ax.text(x, y, f"{n.stage}\n{n.key[:8]}" + (f"\n{n.summary}" if n.summary else ""), ha="center",
                va="center", fontsize=7, bbox={"boxstyle": "round", "fc": "#dde8f5" if node != graph.root else
                                               "#f5e0c8", "ec": "0.5"})
    ax.set_xlim(-0.6, depth_max + 0.6), ax.set_ylim(-height + 0.4, 0.6)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
