"""Where a pretrained model comes from (issue 13): an HF causal-LM folder given as a local path or any fsspec URL
(s3://...), a hub id (from the local HF cache; where the hub cannot be reached and the cache lacks it, a fast
error saying what to pass instead), or a GGUF file inside a package (tasks/data/import_model.py). Each becomes an
HF folder in the store, keyed by the content of what it was made from, so every node reads the same weights.

`dtype` is the dtype the imported copy is stored in: "auto" copies the folder's files as they are; any other value
loads the model with transformers and re-saves it as safetensors in that dtype. A GGUF has its own `gguf.dtype`
(it is always converted), so `dtype` other than "auto" next to `gguf` is refused rather than silently mapped."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from prefect import task
from prefect.cache_policies import NONE
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ray_cluster.model_inputs import ModelFolderError, check_causal_lm, read_model_config
from ray_cluster.weight_files import WEIGHT_FILES
from tasks.core.stage_cache import StageContext, run_stage
from tasks.core.store import ArtifactRef
from tasks.data.import_model import GGUFModelConfig, import_gguf_model
from tasks.data.pad_token import ensure_distinct_pad


class ModelSourceError(ValueError):
    """A model that cannot be used: names where it was looked for and what to pass instead."""


class ModelConfig(BaseModel):
    """Exactly one of `path`, `hub`, `gguf`."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(default=None, description="HF model folder: local path or fsspec URL (s3://...)")
    hub: str | None = Field(default=None, description="hub id, e.g. Qwen/Qwen2.5-0.5B-Instruct")
    revision: str | None = Field(default=None, description="hub revision (branch, tag or commit)")
    gguf: GGUFModelConfig | None = Field(default=None, description="a GGUF file shipped inside a package")
    storage_options: dict = Field(default_factory=dict, description="fsspec options for a remote `path`")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="dtype of the imported copy (path / hub); auto: as the source folder has it")

    @model_validator(mode="after")
    def _one_source(self):
        given = [name for name in ("path", "hub", "gguf") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of path, hub, gguf (got {given or 'none'})")
        if self.gguf is not None and self.dtype != "auto":
            raise ValueError(f"dtype={self.dtype!r} is for path / hub; a GGUF's dtype is gguf.dtype "
                             f"(now {self.gguf.dtype!r})")
        return self


def resolve_hub(repo_id: str, revision: str | None) -> Path:
    """The snapshot folder of a hub model: from the local cache, else downloaded where the hub is reachable."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception as cached_error:  # not in the cache: only then try the network, and only if allowed
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "false", "False", ""):
            raise ModelSourceError(
                f"model.hub={repo_id!r} is not in the local HF cache ({type(cached_error).__name__}) and the hub is "
                "not reachable here (HF_HUB_OFFLINE is set); pass model.path (a local folder or s3:// URL of an HF "
                "model folder) or model.gguf instead") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, etag_timeout=10))
    except Exception as exc:
        raise ModelSourceError(f"model.hub={repo_id!r}: could not be downloaded ({type(exc).__name__}: {exc}); pass "
                               "model.path (a local folder or s3:// URL of an HF model folder) instead") from None


def check_model_folder(folder: Path, where: str) -> None:
    """A causal LM (the check generation makes, ray_cluster/model_inputs.py) with its tokenizer, or
    ModelSourceError naming what is missing."""
    import fsspec

    try:
        check_causal_lm(read_model_config(fsspec.filesystem("file"), str(folder)), where)
    except ModelFolderError as exc:
        raise ModelSourceError(str(exc)) from None
    if not any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise ModelSourceError(f"{where}: no tokenizer files; save the tokenizer into the model folder")


def resave_as(src: Path, out: Path, dtype: str) -> None:
    """The causal LM in `src` loaded by transformers and saved into `out` as safetensors in `dtype`, with every
    other file of the folder (tokenizer, chat template, ...) copied alongside."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src, dtype=getattr(torch, dtype))
    model.save_pretrained(out, safe_serialization=True)
    weights = {p for pattern in WEIGHT_FILES for p in src.glob(pattern)}
    for path in src.iterdir():
        if path.is_file() and path not in weights and not (out / path.name).exists():
            shutil.copy2(path, out / path.name)


@task(name="import_model", retries=1, cache_policy=NONE, task_run_name="import_model[{name}]")
def import_model(name: str, cfg: ModelConfig, ctx: StageContext) -> ArtifactRef:
    """The model as an HF folder in the store (a GGUF is converted by `import_gguf_model`)."""
    if cfg.gguf is not None:
        return import_gguf_model(cfg.gguf, ctx)
    source = str(resolve_hub(cfg.hub, cfg.revision)) if cfg.hub else cfg.path
    options = {} if cfg.hub else cfg.storage_options

    def compute(out: Path) -> dict:
        import fsspec

        url = source if "://" in source else f"file://{os.path.abspath(source)}"
        fs, root = fsspec.core.url_to_fs(url, **dict(options))
        if not fs.isdir(root):
            raise ModelSourceError(f"model {source}: not a folder")
        copy = out if cfg.dtype == "auto" else out / ".source"  # re-saved from here, then removed
        fs.get(root.rstrip("/") + "/", str(copy), recursive=True)
        for junk in copy.glob(".cache"):  # hub snapshots may carry lock/metadata folders
            shutil.rmtree(junk, ignore_errors=True)
        check_model_folder(copy, f"model {source}")
        if copy != out:
            resave_as(copy, out, cfg.dtype)
            shutil.rmtree(copy)
        pad = ensure_distinct_pad(out)
        config = read_model_config(fsspec.filesystem("file"), str(out))
        return {"source": cfg.hub or cfg.path, "files": sorted(p.name for p in out.iterdir()),
                "dtype": config.get("dtype") or config.get("torch_dtype")} | pad

    return run_stage(ctx, "import_model", cfg, {}, compute, reads={"model": (source, options)})
