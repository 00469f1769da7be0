"""SFT through Ray Train on CPU: the loss goes down and the checkpoint is a loadable HF folder."""
from pathlib import Path

from models.sft_data import tokenize_pair
from models.sft_train import OptimConfig
from models.tiny_llama import ModelSize
from models.tokenizer import build_digit_tokenizer
from ray_cluster.folders import RemoteFolder
from ray_cluster.sft_trainer import SFTJob, TrainResources, fit_sft


def test_fit_sft_on_ray_train_learns_and_saves(tmp_path, ray_local):
    pairs = [(f"Question: {i} plus 2?\nAnswer:", f" {i}+2 = <<{i}+2={i + 2}>>{i + 2}\n#### {i + 2}") for i in range(20)]
    tokenizer = build_digit_tokenizer(p + c for p, c in pairs)
    tokenizer.save_pretrained(tmp_path / "tok")
    job = SFTJob(tokenizer=RemoteFolder(uri=str(tmp_path / "tok")),
                 size=ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
                 optim=OptimConfig(steps=30, batch_size=8, lr=1e-2, warmup_steps=2),
                 examples=[tokenize_pair(tokenizer, p, c, 64) for p, c in pairs])
    seen = []
    metrics = fit_sft(job, TrainResources(num_workers=1, cpus_per_worker=1), tmp_path / "out",
                      on_progress=lambda step, loss: seen.append(step))
    assert metrics["steps"] == 30
    assert metrics["final_loss"] < 0.6 * metrics["first_loss"]
    assert seen and seen[-1] == 30
    assert (Path(tmp_path / "out") / "model.safetensors").exists()
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")
