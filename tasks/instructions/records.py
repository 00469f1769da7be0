"""The tables of the instruction-synthesis stages (Evol-Instruct, Self-Instruct), declared as the core tables are
(tasks/core/records.py), so a stage that writes a missing or mistyped lineage field fails where it writes.

Every table a teacher is prompted from extends PROBLEMS (`id`, `prompt`, presentation), so the existing
`sample_completions` stage reads it as it reads a problem set; every table a student trains on has `prompt` and
`completion`, as `train_sft` reads them."""
from __future__ import annotations

import pyarrow as pa

from tasks.core.records import PRESENTATION, PROBLEMS, STRINGS, Column, RecordSchema

# --- Evol-Instruct -----------------------------------------------------------------------------------------------
# Where an evolved question came from: the seed it descends from, its direct parent, the operation and the round
# that made it (seeds: operation "seed", round 0, no parent).
LINEAGE = (Column("source_id", pa.string()), Column("parent_id", pa.string(), required=False),
           Column("operation", pa.string()), Column("round", pa.int64()))

# pool.parquet / train.parquet: questions with the teacher's (or, for seeds, the dataset's) answer; `prompt` is
# what the teacher was asked and `completion` its answer, so the table is SFT data as it stands
EVOLVED = PROBLEMS.extend([Column("question", pa.string()), Column("answer", pa.string()), *LINEAGE],
                          kind="evolved questions")
# the evolution prompts: one per (parent, operation); `prompt` is the operation's rewriting instruction
EVOLUTION_PROMPTS = PROBLEMS.extend([Column("parent_question", pa.string()), *LINEAGE], kind="evolution prompts")
# the evolved questions that passed the question filters, put to the teacher to answer
TO_ANSWER = PROBLEMS.extend([Column("question", pa.string()), Column("parent_question", pa.string()),
                             Column("evolution", pa.string()), *LINEAGE], kind="evolved questions to answer")
# every eliminated candidate with the filter that dropped it (the first in the configured order that fired)
ELIMINATED = RecordSchema("eliminated evolutions", (
    Column("id", pa.string()), Column("question", pa.string()), Column("evolution", pa.string()),
    Column("answer", pa.string(), required=False), Column("reason", pa.string()), *LINEAGE))

# --- Self-Instruct -----------------------------------------------------------------------------------------------
# pool.parquet: the task pool (seeds, then every kept instruction); `output` is a seed's written response
INSTRUCTIONS = RecordSchema("instructions", (
    Column("id", pa.string()), Column("instruction", pa.string()), Column("output", pa.string(), required=False),
    Column("origin", pa.string()),  # seed file | dataset | generated
    Column("round", pa.int64()), Column("prompt_id", pa.string(), required=False)))
# the few-shot prompts that ask the teacher for new instructions, with the pool rows shown as examples
INSTRUCTION_PROMPTS = PROBLEMS.extend([Column("round", pa.int64()), Column("example_ids", STRINGS)],
                                      kind="instruction prompts")
# kept instructions put to the teacher for a response
TO_RESPOND = PROBLEMS.extend([Column("instruction", pa.string()), Column("origin", pa.string()),
                              Column("round", pa.int64())], kind="instructions to respond to")
REJECTED = RecordSchema("rejected instructions", (
    Column("instruction", pa.string()), Column("round", pa.int64()), Column("prompt_id", pa.string()),
    Column("reason", pa.string()),
    Column("rouge_l", pa.float64(), required=False),  # highest ROUGE-L F against the pool (too_similar)
    Column("nearest", pa.string(), required=False)))  # the pool instruction it was closest to
# train.parquet of the instruction dataset: what the student is fine-tuned on
INSTRUCTION_SFT = RecordSchema("instruction data", (
    Column("id", pa.string()), Column("prompt", pa.string()), Column("completion", pa.string()),
    Column("instruction", pa.string()), Column("origin", pa.string()), Column("round", pa.int64()),
    *PRESENTATION))
