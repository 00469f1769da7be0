"""Training checkpoints in the artifact store (file:// or s3://), written by rank 0 and read by every worker.

    <place>/step-00000100/model/           HF folder: config + safetensors + tokenizer (LoRA merged in)
                         /adapter/         LoRA adapter (peft), when training with LoRA
                         /trainer_state.pt optimizer, scheduler, RNG, step (= data position), metric history
                         /COMPLETE         written last: a checkpoint without it is ignored
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import torch
from pydantic import BaseModel, ConfigDict, Field

COMPLETE = "COMPLETE"


class CheckpointPlace(BaseModel):
    model_config = ConfigDict(frozen=True)
    uri: str
    storage_options: dict[str, Any] = Field(default_factory=dict)
    keep_last: int = Field(default=2, ge=1)

    def open(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, root = fsspec.core.url_to_fs(self.uri, **dict(self.storage_options))
        return fs, root.rstrip("/")


def complete_steps(place: CheckpointPlace) -> list[int]:
    """Steps with a complete checkpoint, ascending."""
    fs, root = place.open()
    fs.invalidate_cache(root)  # s3fs caches listings; another process may have written since
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
    except FileNotFoundError:
        return []
    steps = sorted(int(n[5:]) for n in names if n.startswith("step-") and n[5:].isdigit())
    return [s for s in steps if fs.exists(f"{root}/step-{s:08d}/{COMPLETE}")]


def save_checkpoint(place: CheckpointPlace, model, tokenizer, state, rank: int, lora: bool) -> None:
    """Rank 0 writes model + state to a local folder, uploads it file by file, then the COMPLETE marker."""
    if rank != 0:
        return
    fs, root = place.open()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        plain = copy.deepcopy(model).merge_and_unload() if lora else model
        plain.save_pretrained(local / "model", safe_serialization=True)
        tokenizer.save_pretrained(local / "model")
        if lora:
            model.save_pretrained(local / "adapter")
        torch.save({"step": state.step, "optimizer": state.optimizer, "scheduler": state.scheduler,
                    "rng": state.rng, "history": state.history}, local / "trainer_state.pt")
        target = f"{root}/step-{state.step:08d}"
        local_fs = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            remote = f"{target}/{path.relative_to(local).as_posix()}"
            if local_fs:  # object stores have no folders
                fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), remote)
        fs.pipe(f"{target}/{COMPLETE}", str(state.step).encode())
    for old in complete_steps(place)[: -place.keep_last]:
        fs.rm(f"{root}/step-{old:08d}", recursive=True)


def load_latest(place: CheckpointPlace, model, lora: bool):
    """Load the newest complete checkpoint's weights into `model` and return its TrainState (None if none)."""
    from models.train_loop import TrainState

    steps = complete_steps(place)
    if not steps:
        return None
    fs, root = place.open()
    source = f"{root}/step-{steps[-1]:08d}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        _download(fs, source, local)
        _load_weights(model, local, lora)
        raw = torch.load(local / "trainer_state.pt", weights_only=False)
    return TrainState(step=raw["step"], optimizer=raw["optimizer"], scheduler=raw["scheduler"], rng=raw["rng"],
                      history=raw["history"])


def _load_weights(model, local: Path, lora: bool) -> None:
    if lora:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(local / "adapter" / "adapter_model.safetensors"))
        return
    saved = type(model).from_pretrained(local / "model", dtype=torch.float32)
    model.load_state_dict(saved.state_dict())


def fetch_model(place: CheckpointPlace, step: int, out_dir: Path) -> None:
    """Copy the HF folder of checkpoint `step` to `out_dir` (the stage's artifact)."""
    fs, root = place.open()
    _download(fs, f"{root}/step-{step:08d}/model", out_dir)


def _download(fs, source: str, local_dir: Path) -> None:
    source = source.rstrip("/")
    for remote in fs.find(source):
        local = local_dir / remote[len(source) + 1:]
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(local))
