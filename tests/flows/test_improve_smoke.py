"""The improve flow as a scheduled user runs it: a deployment on a real Prefect server (`winnow serve` in its own
process), run twice — first two rounds, then one more — against one registry. Each round starts from the champion
the round before left; every candidate is gated exactly once, with its paired effect and McNemar p in the report;
the champion's accuracy never goes down; nothing is promoted twice; and a model's lineage reaches its data."""
from __future__ import annotations

import asyncio
import json
import signal

import pytest
import yaml

from deploy_helpers import _artifact_keys, _serve, _stop, _wait_for_deployment, _wait_for_run
from flows.config import load_config
from flows.improve import ImproveConfig
from net import free_port
from tasks.core.lineage_graph import lineage_graph
from tasks.core.store import ArtifactStore
from tasks.registry.registry import ModelRegistry
from winnow.prefect_server import local_prefect_server

pytestmark = pytest.mark.slow


def _runs(tmp_path, store, rounds: list[int]) -> list:
    served = tmp_path / "deployments.yaml"
    served.write_text(yaml.safe_dump({"deployments": [{"name": "improve-smoke", "flow": "improve",
                                                       "config": "smoke"}]}))
    finished = []
    with local_prefect_server("127.0.0.1", free_port(), home=str(tmp_path / "prefect")) as api_url:
        from prefect.client.orchestration import get_client

        async def scenario():
            async with get_client() as client:
                serving = _serve(served, store, api_url, tmp_path / "serve.log")
                deployment = await _wait_for_deployment(client, "improve/improve-smoke", serving,
                                                        tmp_path / "serve.log")
                for n in rounds:
                    params = deployment.parameters["cfg"] | {"rounds": n}
                    flow_run = await client.create_flow_run_from_deployment(deployment.id,
                                                                            parameters={"cfg": params})
                    run = await _wait_for_run(client, flow_run.id)
                    assert run.state.is_completed(), (run.state, (tmp_path / "serve.log").read_text()[-3000:])
                    finished.append((run, await _artifact_keys(client, run.id)))
                assert _stop(serving) in (0, -signal.SIGTERM, 143)

        asyncio.run(scenario())
    return finished


@pytest.mark.reuses_smoke_runs
def test_a_weekly_improve_deployment_runs_twice_and_only_ever_promotes_a_better_candidate(tmp_path, warm_rft_store):
    store_dir = tmp_path / "store"
    warm_rft_store(store_dir)  # the SFT base: the RFT smoke run's (same data and base_sft sections)
    finished = _runs(tmp_path, store_dir, rounds=[2, 1])
    assert all({"improve-report", "registry-smoke-policy"} <= keys for _, keys in finished)

    cfg = load_config(ImproveConfig, "improve", "smoke", [f"store.url={store_dir}"])
    store = ArtifactStore(cfg.store)
    versions = ModelRegistry(store).versions("smoke-policy")
    # v1: the SFT base, crowned because there was no champion; then one candidate per round, three rounds
    assert [v.version for v in versions] == [1, 2, 3, 4]
    assert "no champion yet" in versions[0].history[1]["reason"]
    for v in versions[1:]:
        decided = [h for h in v.history if h["status"] in ("champion", "rejected")]
        assert len(decided) == 1, v.history  # gated exactly once, never promoted twice
        assert v.decision["n"] == cfg.data.n_test and 0 < v.decision["p_value"] <= 1
        # each candidate was trained from the champion of its time (its parent's weights are its init)
        champion_then = store.manifest(v.artifact)["inputs"]["init"]["key"]
        assert champion_then == versions[v.parent - 1].artifact.key
    assert sum(v.status == "champion" for v in versions) == 1
    crowned = sorted(((h["at"], v) for v in versions for h in v.history if h["status"] == "champion"),
                     key=lambda pair: (pair[0], pair[1].version))
    accuracy = [v.evaluations[-1].accuracy for _, v in crowned]
    assert accuracy == sorted(accuracy)  # the champion's accuracy never went down

    reports = [m for m in store.list("write_report") if m["metrics"]["flow"] == "improve"]
    last = (store.local_path(store.lookup("write_report", reports[-1]["key"])) / "report.md").read_text()
    assert "## Promotion gate" in last and "McNemar p" in last and "## Champion of smoke-policy" in last
    trend = store.list("champion_trend")[-1]["metrics"]["trend"]
    assert [t["version"] for t in trend] == [v.version for _, v in crowned]

    newest = versions[-1]
    graph = lineage_graph(store, newest.artifact.stage, newest.artifact.key)
    stages = {n.stage for n in graph.nodes.values()}
    assert {"make_tiny_arith", "build_tokenizer", "sample_completions", "select_samples", "train_sft"} <= stages
    assert json.dumps(newest.lineage["datasets"]).count("make_tiny_arith") == 1
