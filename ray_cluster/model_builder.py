"""Building a job's model and method inside a training worker. The job's method entry (models/methods/) says
which model it trains (from the HF folder `job.init`, or fresh from a seed), how the loop calls it and which
`TrainMethod` runs; this module adds what needs the worker: local copies of remote folders, and LoRA."""
from __future__ import annotations


def build_model(job):
    """(tokenizer, the HF model to train: a peft model when `job.config.lora` is set)."""
    from transformers import AutoTokenizer

    from models.methods import get_method
    from ray_cluster.folders import materialize

    kind, cfg = get_method(job.method).model, job.config
    tokenizer = AutoTokenizer.from_pretrained(materialize(job.tokenizer))
    if job.init is not None:
        model = kind.pretrained(materialize(job.init), tokenizer, cfg.init_seed)
    else:
        model = kind.fresh(cfg.model, tokenizer, cfg.init_seed)
    if cfg.lora is not None:
        model = apply_lora(model, cfg.lora, kind.lora_modules_to_save)
    return tokenizer, model


def apply_lora(model, lora, modules_to_save: tuple[str, ...] = ()):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), modules_to_save=list(modules_to_save) or None)
    return get_peft_model(model, config)


def build_method(job, pad_id: int):
    """The loop's `TrainMethod` for the job's data and config."""
    from models.methods import get_method

    return get_method(job.method).make(job.data, job.config, pad_id)


def build_for_job(job):
    tokenizer, model = build_model(job)
    # pretrained tokenizers often have no pad token; padded positions are masked, so EOS serves
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return tokenizer, model, build_method(job, pad_id)


def trainable_model(job, model):
    """What the loop calls: the method's model kind wraps it (a reward model reads its reward at EOS)."""
    from models.methods import get_method

    return get_method(job.method).model.wrap(model)
