"""The CLI fails fast on bad config, naming the field, before starting Prefect or Ray."""
from typer.testing import CliRunner

from winnow.cli import app


def test_bad_override_exits_2_naming_the_field():
    result = CliRunner().invoke(app, ["run", "rft", "-c", "smoke", "-s", "sample.sampling.n=zero"])
    assert result.exit_code == 2
    assert "sample.sampling.n" in result.output and "valid integer" in result.output


def test_unknown_flow_is_refused():
    result = CliRunner().invoke(app, ["run", "nope"])
    assert result.exit_code != 0 and "unknown flow 'nope'" in result.output


def test_ls_lists_committed_artifacts(tmp_path):
    from tasks.core.store import ArtifactStore, StoreSpec

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    ArtifactStore(StoreSpec(url=str(tmp_path / "s"))).commit(
        "make_tiny_arith", "abc123", tmp_path / "d", {"metrics": {"train_rows": 7}, "timings": {"wall_s": 1.0}})
    result = CliRunner().invoke(app, ["ls", "--store", str(tmp_path / "s")])
    assert result.exit_code == 0 and "make_tiny_arith" in result.output and "train_rows=7" in result.output


def test_report_finds_every_flows_reports(tmp_path):
    from tasks.core.store import ArtifactStore, StoreSpec

    store = ArtifactStore(StoreSpec(url=str(tmp_path / "s")))
    for i, flow in enumerate(["rft", "rrtf", "rft"]):
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "report.md").write_text(f"# report {i} of {flow}")
        store.commit("write_report", f"k{i}", tmp_path / f"r{i}", {"metrics": {"flow": flow, "title": f"t{i}"},
                                                                    "timings": {"wall_s": 0.1}, "created_at": i})
    runner = CliRunner()
    newest = runner.invoke(app, ["report", "--store", str(tmp_path / "s")])
    assert newest.exit_code == 0 and "# report 2 of rft" in newest.output
    rrtf = runner.invoke(app, ["report", "rrtf", "--store", str(tmp_path / "s")])
    assert rrtf.exit_code == 0 and "# report 1 of rrtf" in rrtf.output
    listed = runner.invoke(app, ["report", "--all", "--store", str(tmp_path / "s")])
    assert listed.exit_code == 0 and all(f"t{i}" in listed.output for i in range(3))
    missing = runner.invoke(app, ["report", "dpo", "--store", str(tmp_path / "s")])
    assert missing.exit_code == 1 and "['rft', 'rrtf']" in missing.output


def test_bad_config_files_and_overrides_get_one_line_errors(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"title: caf\xe9\n")
    runner = CliRunner()
    for args, needle in [(["-c", str(latin)], "not UTF-8 text (byte 10"),
                         (["-c", "smoke", "-s", "sample.sampling.n=[1,"], "the value is not valid YAML"),
                         (["-c", "smoke", "-s", "sample..n=3"], "is not a key path"),
                         (["-c", "smoke", "-s", "novalue"], "must look like key.path=value")]:
        result = runner.invoke(app, ["run", "rft", *args])
        text = " ".join(result.output.split())  # rich wraps long lines
        assert result.exit_code == 2 and needle in text, result.output
        assert "Traceback" not in result.output


def test_store_verify_and_gc_from_the_command_line(tmp_path):
    from tasks.core.store import ArtifactStore, StoreSpec

    store = ArtifactStore(StoreSpec(url=str(tmp_path / "s")))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    ref = store.commit("stage", "abc123", tmp_path / "d", {"metrics": {}, "timings": {"wall_s": 1.0}})
    ok = CliRunner().invoke(app, ["store", "verify", "--store", str(tmp_path / "s")])
    assert ok.exit_code == 0 and "1 artifacts checked, 0 bad" in ok.output
    (tmp_path / "s" / "artifacts" / "stage" / "abc123" / ref.uri.rsplit("/", 1)[-1] / "x.txt").write_text("y")
    bad = CliRunner().invoke(app, ["store", "verify", "--store", str(tmp_path / "s"), "--quarantine"])
    assert bad.exit_code == 1 and "1 bad" in bad.output and store.lookup("stage", "abc123") is None
    (tmp_path / "s" / "artifacts" / "stage" / "abc123" / "data-orphan").mkdir()
    (tmp_path / "s" / "artifacts" / "stage" / "abc123" / "data-orphan" / "f").write_text("zz")
    dry = CliRunner().invoke(app, ["store", "gc", "--store", str(tmp_path / "s"), "--grace-hours", "0"])
    assert dry.exit_code == 0 and "would remove" in dry.output and "data-orphan" in dry.output
    assert (tmp_path / "s" / "artifacts" / "stage" / "abc123" / "data-orphan").exists()
    CliRunner().invoke(app, ["store", "gc", "--store", str(tmp_path / "s"), "--grace-hours", "0", "--delete"])
    assert not (tmp_path / "s" / "artifacts" / "stage" / "abc123" / "data-orphan").exists()


def test_models_ls_show_promote_register_and_lineage(tmp_path):
    import json

    from tasks.core.stage_cache import StageContext, run_stage
    from tasks.core.store import ArtifactStore, StoreSpec
    from tasks.registry.registry import ModelRegistry

    spec = StoreSpec(url=str(tmp_path / "s"))
    ctx = StageContext(store=spec, show_progress=False)

    def artifact(stage, tag, inputs=None):
        def compute(out):
            (out / "w.txt").write_text(tag)
            return {"model_name": tag}
        return run_stage(ctx, stage, {"tag": tag}, inputs or {}, compute)

    data = artifact("make_tiny_arith", "data")
    base = artifact("train_sft", "base", {"data0:train": data})
    tuned = artifact("train_sft", "tuned", {"data0:train": data, "init": base})
    registry = ModelRegistry(ArtifactStore(spec))
    registry.decide("policy", registry.register("policy", base).version, True, {"reason": "first"})
    registry.register("policy", tuned, parent=1)
    runner, store = CliRunner(), ["--store", str(tmp_path / "s")]

    listed = runner.invoke(app, ["models", "ls", *store])
    assert listed.exit_code == 0 and "policy" in listed.output and "v1" in listed.output
    versions = runner.invoke(app, ["models", "ls", "policy", *store])
    assert "champion" in versions.output and "candidate" in versions.output
    shown = runner.invoke(app, ["models", "show", "policy", "2", *store])
    assert json.loads(shown.output)["parent"] == 1
    promoted = runner.invoke(app, ["models", "promote", "policy", "2", "--reason", "reviewed by hand", *store])
    assert promoted.exit_code == 0 and registry.champion("policy").version == 2
    assert registry.get("policy", 1).status == "retired"
    assert registry.get("policy", 2).history[-1]["reason"] == "reviewed by hand"
    missing = runner.invoke(app, ["models", "show", "policy", "9", *store])
    assert missing.exit_code == 1 and "no version 9" in missing.output

    png = tmp_path / "lineage.png"
    lineage = runner.invoke(app, ["lineage", "policy", "--png", str(png), *store])
    assert lineage.exit_code == 0 and lineage.output.splitlines()[0].startswith(f"train_sft/{tuned.key[:12]}")
    assert "init: train_sft/" + base.key[:12] in lineage.output and png.read_bytes()[:4] == b"\x89PNG"
    # printed as text: a role like data0:train: is not an emoji code, [above] is not markup
    assert "data0:train: make_tiny_arith/" in lineage.output and "[above]" in lineage.output
    by_key = runner.invoke(app, ["lineage", f"train_sft/{base.key[:10]}", *store])
    assert by_key.exit_code == 0 and by_key.output.splitlines()[0].startswith(f"train_sft/{base.key[:12]}")

    from generation_assets import build_model_folder

    folder = build_model_folder(tmp_path / "hf")  # any HF model folder can be registered
    registered = runner.invoke(app, ["models", "register", "outside", str(folder), *store])
    assert registered.exit_code == 0, registered.output
    [entry] = registry.versions("outside")
    assert entry.status == "candidate" and entry.artifact.stage == "import_model"
