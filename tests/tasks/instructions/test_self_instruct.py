"""Self-Instruct's filters, prompt and parsing on hand-written cases: each filter fires on its case and not on a
good instruction; the ROUGE-L novelty filter rejects a near-duplicate and keeps a different task."""
from __future__ import annotations

import pytest

from tasks.instructions.self_instruct import (INSTRUCTION_FILTERS, InstructionFilterConfig, Pool, PromptingConfig,
                                              draw_examples, first_failure, instruction_prompt, parse_instructions)

KEPT = ["Give three tips for staying healthy.", "Write a haiku about autumn leaves.",
        "Convert 5 kilometres to miles and show the calculation."]
CFG = InstructionFilterConfig()


def fired(text: str, pool: Pool | None = None, cfg: InstructionFilterConfig = CFG) -> list[str]:
    pool = pool or Pool(KEPT)
    return [name for name, f in INSTRUCTION_FILTERS.items() if f.fn(text, pool, cfg)]


def test_a_new_different_task_passes_every_filter():
    assert fired("Explain how a bicycle gear changes the effort needed to climb a hill.") == []


def test_rouge_l_rejects_a_near_duplicate_and_keeps_a_different_task():
    pool = Pool(KEPT)
    near = "Give three tips for staying healthy and happy."
    score, nearest = pool.nearest(near)
    assert nearest == KEPT[0] and score >= 0.7  # 6 of 6 words in order: F = 2*6/(6+8) = 0.857
    assert score == pytest.approx(2 * 6 / (6 + 8))
    assert fired(near, pool) == ["too_similar"]
    different = "Name the capital city of Australia and one fact about it."
    assert pool.nearest(different)[0] < 0.7 and fired(different, pool) == []


def test_the_rouge_threshold_is_configurable():
    near = "Give three tips for staying healthy and happy."
    assert fired(near, cfg=InstructionFilterConfig(rouge_threshold=0.9)) == []


def test_an_exact_duplicate_after_normalisation_is_a_duplicate():
    assert fired("give three tips for staying healthy") == ["duplicate", "too_similar"]
    assert first_failure("give three tips for staying healthy", Pool(KEPT), CFG) == "duplicate"


@pytest.mark.parametrize("text, name", [
    ("Summarise.", "too_short"), ("Explain photosynthesis", "too_short"),
    (" ".join(["word"] * 151), "too_long"),
    ("Describe the image below in detail.", "banned_keywords"),
    ("Draw a cat using ASCII characters only.", "banned_keywords"),
    ("Plot the sales figures for the last five years.", "banned_keywords"),
    ("Open the attached file and count its lines.", "banned_keywords"),
    ("Tell me how to go to the nearest station.", "banned_keywords"),
    ("- Write a short poem about the sea.", "starts_with_punctuation"),
    ("\"Write a short poem about the sea.", "starts_with_punctuation"),
    ("Écrivez un court poème sur la mer.", "non_english"),
    ("写一首 关于 大海 的 短诗。", "non_english"),
])
def test_each_simple_filter_fires_on_its_case(text, name):
    assert first_failure(text, Pool(KEPT), CFG) == name


def test_banned_words_match_whole_words_only():
    assert "banned_keywords" not in fired("Explain how a bitmap compression scheme differs from profiles.")
    # as blunt as the paper's: a plot twist is banned with the plots
    assert "banned_keywords" in fired("Describe the plot twist of a famous novel you like.")


def test_length_bounds_are_configurable():
    cfg = InstructionFilterConfig(min_words=1, max_words=4)
    assert first_failure("Summarise.", Pool(), cfg) is None
    assert first_failure("Write a short poem now.", Pool(), cfg) == "too_long"


def test_kept_instructions_join_the_pool_and_later_ones_are_compared_with_them():
    pool = Pool(KEPT)
    new = "List five animals that live in the Arctic."
    assert first_failure(new, pool, CFG) is None
    pool.add(new)
    assert first_failure("List five animals that live in the Arctic ocean.", pool, CFG) == "too_similar"


def test_an_unknown_filter_is_a_config_error():
    with pytest.raises(ValueError, match="known: "):
        InstructionFilterConfig(filters=["too_short", "too_boring"])


def test_the_prompt_numbers_the_examples_and_leaves_the_next_task_open():
    prompt = instruction_prompt(["Say hi.", "Count to\n three."], "Come up with tasks.")
    assert prompt == "Come up with tasks.\n\nTask 1: Say hi.\nTask 2: Count to three.\nTask 3:"


def test_examples_mix_seeds_and_generated_tasks_as_configured_and_are_seeded():
    pool = [{"id": f"s{i}", "origin": "seed"} for i in range(10)] + [{"id": f"g{i}", "origin": "generated"}
                                                                      for i in range(5)]
    cfg = PromptingConfig(shots=8, generated_shots=2)
    picked = draw_examples(pool, 1, 0, cfg)
    assert len(picked) == 8 and sum(p["origin"] == "generated" for p in picked) == 2
    assert picked == draw_examples(pool, 1, 0, cfg) and picked != draw_examples(pool, 1, 1, cfg)
    only_seeds = draw_examples(pool[:10], 1, 0, cfg)  # no generated tasks yet: all from the seeds
    assert len(only_seeds) == 8 and all(p["origin"] == "seed" for p in only_seeds)


@pytest.mark.parametrize("text, truncated, limit, expected", [
    (" Name three rivers in Africa.\nTask 10: Write a limerick about a cat.\nTask 11: Explain gravity to a",
     True, 5, ["Name three rivers in Africa.", "Write a limerick about a cat."]),
    (" Name three rivers in Africa.\nTask 10: Write a limerick about a cat.", False, 5,
     ["Name three rivers in Africa.", "Write a limerick about a cat."]),
    ("Task 9: Name three rivers.\n\nSure! These are tasks a model can do.", False, 5, ["Name three rivers."]),
    ("**Task 9:** Name three rivers.\n**Task 10:** Name two seas.\nTask 11: Name a lake.", False, 2,
     ["Name three rivers.", "Name two seas."]),
    ("Name three rivers in Africa", True, 5, []),
    ("", False, 5, []),
])
def test_parse_instructions(text, truncated, limit, expected):
    assert parse_instructions(text, truncated, limit) == expected
