"""Building a job's model and method inside a training worker: fresh tiny model or an HF folder, LoRA by
config, the reward-model wrapper, and the method object for the loop."""
from __future__ import annotations

import torch


def build_model(job):
    """The HF model to train (a peft model when `job.lora` is set)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from models.reward_model import build_tiny_reward_model
    from models.tiny_llama import build_tiny_llama
    from ray_cluster.folders import materialize

    tokenizer = AutoTokenizer.from_pretrained(materialize(job.tokenizer))
    if job.method == "reward_model":
        if job.init is not None:  # InstructGPT: the RM starts from the SFT model, with a new scalar head
            torch.manual_seed(job.init_seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                materialize(job.init), num_labels=1, dtype=torch.float32)
            model.config.pad_token_id = tokenizer.pad_token_id
        else:
            model = build_tiny_reward_model(job.size, tokenizer, seed=job.init_seed)
    elif job.init is not None:
        model = AutoModelForCausalLM.from_pretrained(materialize(job.init), dtype=torch.float32)
    else:
        model = build_tiny_llama(job.size, tokenizer, seed=job.init_seed)
    if job.lora is not None:
        model = apply_lora(model, job.lora, job.method == "reward_model")
    return tokenizer, model


def apply_lora(model, lora, reward_head: bool):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules),
                        modules_to_save=["score"] if reward_head else None)
    return get_peft_model(model, config)


def build_method(job, pad_id: int):
    from models.train_methods import DPOMethod, RewardModelMethod, RRTFMethod, SFTMethod

    opts = job.options
    if job.method == "sft":
        return SFTMethod(job.data, pad_id, opts.get("batching", "bucketed"), job.optim.batch_size,
                         opts.get("pack_len", job.optim.max_len))
    if job.method == "reward_model":
        return RewardModelMethod(job.data, pad_id, opts.get("loss_name", "ranking_rm"))
    if job.method == "dpo":
        pairs, reference = job.data
        return DPOMethod(pairs, reference, pad_id, opts.get("beta", 0.1))
    return RRTFMethod(job.data, pad_id)


def build_for_job(job):
    tokenizer, model = build_model(job)
    # pretrained tokenizers often have no pad token; padded positions are masked, so EOS serves
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return tokenizer, model, build_method(job, pad_id)


def trainable_model(job, model):
    """What the loop calls: the reward model through `EOSReward` (reward read at EOS), others as they are."""
    from models.reward_model import EOSReward

    return EOSReward(model) if job.method == "reward_model" else model
