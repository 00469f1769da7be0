"""Prompt templates (format string and Jinja), k-shot examples from the train split, system prompt and chat
template on/off: rendered once at import, then encoded alike by sampling and every training method."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.core.stage_cache import StageContext
from tasks.core.store import ArtifactStore, StoreSpec
from tasks.core.tables import read_rows
from tasks.data.hf_source import BadRow, DatasetConfig
from tasks.data.prepare_dataset import load_dataset

ROWS = [{"q": f"What is {n} plus {n}?", "sol": f"{n}+{n}={2 * n}\n#### {2 * n}", "key": f"p{n}", "topic": "add"}
        for n in range(10)]


def _load(tmp_path: Path, rows=ROWS, **cfg) -> tuple[list[dict], list[dict], dict]:
    tmp_path.mkdir(exist_ok=True)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[8:]))
    ctx = StageContext(store=StoreSpec(url=str(tmp_path / "store")), show_progress=False)
    config = DatasetConfig(name="mine", format="json", train=[str(train)], test=[str(test)],
                           columns={"question": "q", "solution": "sol", "id": "key"}, **cfg)
    ref = load_dataset.fn(config, ctx)
    store = ArtifactStore(ctx.store)
    manifest = store.manifest(ref) | {"ref": ref, "store": store}
    return read_rows(store, ref, "train"), read_rows(store, ref, "test"), manifest


def test_a_format_template_over_mapped_fields_and_the_datasets_own_columns(tmp_path):
    train, test, _ = _load(tmp_path, instruction="Be brief.",
                           prompt={"template": "[{topic}] Q: {question}\n{instruction}\nA:"})
    assert test[0]["prompt"] == "[add] Q: What is 8 plus 8?\nBe brief.\nA:"
    assert train[0]["system"] is None and train[0]["chat_template"] is True


def test_a_jinja_template(tmp_path):
    _, test, _ = _load(tmp_path, prompt={"template": "{% if topic == 'add' %}Add: {% endif %}{{ question | upper }}"})
    assert test[1]["prompt"] == "Add: WHAT IS 9 PLUS 9?"


@pytest.mark.parametrize("template", ["Q: {nope}", "{{ nope }}"])
def test_a_template_naming_a_missing_field_names_file_row_and_the_field(tmp_path, template):
    with pytest.raises(BadRow, match=r"train.jsonl, row 0, field 'prompt.template'.*'?nope'?.*has \[") as err:
        _load(tmp_path, prompt={"template": template})
    assert "question" in str(err.value)  # lists what the row has


def test_a_broken_format_string_fails_when_the_config_is_read():
    with pytest.raises(ValidationError, match="not a valid format string"):
        DatasetConfig(name="x", format="json", train=["a.jsonl"], prompt={"template": "Q: {question"})


def test_k_shot_examples_come_from_train_with_a_fixed_seed_and_never_show_a_problem_its_own_answer(tmp_path):
    train, test, manifest = _load(tmp_path, prompt={"shots": 2, "shot_seed": 3})
    block, question = test[0]["prompt"].rsplit("\n\n", 1)
    assert question == "What is 8 plus 8?"
    examples = block.split("\n\n")
    assert len(examples) == 2 and all(e.split("\n", 1)[1] in {r["sol"] for r in ROWS[:8]} for e in examples)
    assert test[1]["prompt"].startswith(block)  # one fixed set: engines share the prefix
    for row in train:  # a train problem that is a shot gets the spare one instead of its own solution
        own = row["completion"]
        assert row["prompt"].count(own) == 0 and row["prompt"].count("\n#### ") == 2
    again, _, _ = _load(tmp_path / "again", prompt={"shots": 2, "shot_seed": 3})
    other, _, _ = _load(tmp_path / "other", prompt={"shots": 2, "shot_seed": 4})
    assert [r["prompt"] for r in again] == [r["prompt"] for r in train]
    assert [r["prompt"] for r in other] != [r["prompt"] for r in train]
    assert manifest["metrics"]["example_prompt"] == test[0]["prompt"]


def test_more_shots_than_train_problems_is_an_error_naming_the_setting(tmp_path):
    with pytest.raises(BadRow, match=r"prompt.shots.*8"):
        _load(tmp_path, prompt={"shots": 8})


def test_system_prompt_and_chat_template_switch_are_encoded_alike_by_sampling_and_training(tmp_path):
    """The columns a problem carries decide the prompt tokens: the sampling prompt record and the SFT pair of the
    same row start with the same ids, with the system turn under the chat template or a paragraph without it."""
    from generation_assets import gpt2_tokenizer
    from models.sft_data import prompt_format, tokenize_pair
    from ray_cluster.model_inputs import encode_for_model
    from tasks.generation.generate import GenerateConfig, load_prompts

    tok = gpt2_tokenizer(tmp_path / "tok")
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}<bot>"
    for chat, expected in ((True, "<system>Be exact.</system><user>What is 8 plus 8?</user><bot>"),
                           (False, "Be exact.\n\nWhat is 8 plus 8?")):
        root = tmp_path / str(chat)
        _, test, made = _load(root, prompt={"system": "Be exact.", "chat_template": chat})
        record = load_prompts(made["store"], made["ref"], GenerateConfig(split="test"))[0]
        sampled = encode_for_model(tok, record.text, record.chat_template, system=record.system)
        trained = tokenize_pair(tok, test[0]["prompt"], test[0]["completion"], 256, **prompt_format(test[0]))
        assert trained.input_ids[: len(sampled)] == sampled
        assert tok.decode(sampled).removeprefix(tok.bos_token if not chat else "") == expected
        assert trained.input_ids[-1] == tok.eos_token_id and tok.pad_token_id != tok.eos_token_id
