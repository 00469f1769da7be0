"""Sequence packing: several tokenized examples share one row, without seeing each other.

Each packed example keeps its own positions (position ids restart at 0) and attends only to itself (a
block-diagonal causal mask), so a packed row computes exactly what the examples would compute one by one
(tests/models/test_packing.py checks the logits). The first token of every example is never a loss target:
it would be "predicted" from the previous example's last token.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.sft_data import TokenizedExample


@dataclass(frozen=True)
class PackedRow:
    input_ids: list[int]
    loss_mask: list[int]
    position_ids: list[int]
    segments: list[int]  # which example (0, 1, ...) each token belongs to
    example_ids: list[int]  # dataset indices of the examples in this row, in order


def pack_examples(examples: list[TokenizedExample], ids: list[int], max_len: int) -> list[PackedRow]:
    """Greedily pack `examples` (in the given order) into rows of at most `max_len` tokens.

    Order is kept (no bin-packing reorder), so a data position in the example order is a position in the
    rows too; an example longer than `max_len` is truncated to it.
    """
    rows: list[PackedRow] = []
    current: list[tuple[int, TokenizedExample]] = []
    used = 0
    for index, example in zip(ids, examples):
        n = min(len(example.input_ids), max_len)
        if current and used + n > max_len:
            rows.append(_row(current, max_len))
            current, used = [], 0
        current.append((index, example))
        used += n
    if current:
        rows.append(_row(current, max_len))
    return rows


def _row(items: list[tuple[int, TokenizedExample]], max_len: int) -> PackedRow:
    ids, mask, pos, seg = [], [], [], []
    for s, (_, ex) in enumerate(items):
        n = min(len(ex.input_ids), max_len)
        ids += ex.input_ids[:n]
        mask += [0] + ex.loss_mask[1:n]
        pos += list(range(n))
        seg += [s] * n
    return PackedRow(ids, mask, pos, seg, [i for i, _ in items])


def block_causal_mask(segments: torch.Tensor) -> torch.Tensor:
    """Additive attention mask (B, 1, T, T): 0 where token q may attend to token k (same segment, k <= q),
    the dtype's minimum elsewhere. segments: (B, T), padding marked -1 (it attends to itself only)."""
    b, t = segments.shape
    same = segments[:, :, None] == segments[:, None, :]  # (B, T, T)
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool, device=segments.device))  # (T, T)
    allowed = (same & causal) | torch.eye(t, dtype=torch.bool, device=segments.device)
    mask = torch.zeros(b, 1, t, t, dtype=torch.float32, device=segments.device)
    return mask.masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)


def collate_packed(rows: list[PackedRow], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids, position_ids, loss_mask (B, T); attention_mask (B, 1, T, T) block-diagonal causal."""
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        ids[i, :n], pos[i, :n] = torch.tensor(row.input_ids), torch.tensor(row.position_ids)
        seg[i, :n], loss_mask[i, :n] = torch.tensor(row.segments), torch.tensor(row.loss_mask)
    return {"input_ids": ids, "position_ids": pos, "attention_mask": block_causal_mask(seg), "loss_mask": loss_mask}
