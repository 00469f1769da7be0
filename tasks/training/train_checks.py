"""Checks a training stage makes before any worker starts, and the loss-curve plot of its artifact."""
from __future__ import annotations

from pathlib import Path

import torch

from models.methods import MethodEntry


def check_lora_targets(lora, init_dir: Path | None, size, method: MethodEntry) -> None:
    """Every `lora.target_modules` name must match a module of the model the method trains (peft matches by
    name suffix); the model is built on the meta device, so this costs no memory."""
    from transformers import AutoConfig, LlamaConfig

    if init_dir is not None:
        config = AutoConfig.from_pretrained(init_dir)
    else:
        config = LlamaConfig(vocab_size=64, hidden_size=size.hidden_size, intermediate_size=size.intermediate_size,
                             num_hidden_layers=size.num_layers, num_attention_heads=size.num_heads)
    with torch.device("meta"):
        model = method.model.auto_class.from_config(config)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in lora.target_modules if t not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ValueError(f"lora.target_modules: {missing} not in the model ({type(model).__name__}); "
                         f"its linear layers are {linear}")


def plot_loss(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{title}: training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
