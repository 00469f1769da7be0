import torch

from models.packing import block_causal_mask, collate_packed, pack_examples
from models.sft_data import TokenizedExample
from models.tiny_llama import ModelSize
from transformers import LlamaConfig, LlamaForCausalLM


def _ex(n, start=1):
    return TokenizedExample(list(range(start, start + n)), [0, 0] + [1] * (n - 2))


def test_packing_keeps_order_and_boundaries():
    rows = pack_examples([_ex(4), _ex(5), _ex(3), _ex(7)], [10, 11, 12, 13], max_len=9)
    assert [r.example_ids for r in rows] == [[10, 11], [12], [13]]  # 3 + 7 > 9: a new row
    first = rows[0]
    assert first.position_ids == [0, 1, 2, 3, 0, 1, 2, 3, 4]
    assert first.segments == [0] * 4 + [1] * 5
    # the first token of each example is never a target (it would be predicted from the previous example)
    assert first.loss_mask == [0, 0, 1, 1, 0, 0, 1, 1, 1]


def test_block_causal_mask_isolates_segments():
    mask = block_causal_mask(torch.tensor([[0, 0, 1, 1, -1]]))[0, 0] == 0  # True where attention is allowed
    assert mask.tolist() == [[True, False, False, False, False],
                             [True, True, False, False, False],
                             [False, False, True, False, False],
                             [False, False, True, True, False],
                             [False, False, False, False, True]]


def test_a_packed_row_computes_what_each_example_computes_alone():
    size = ModelSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64)
    cfg = LlamaConfig(vocab_size=40, hidden_size=size.hidden_size, intermediate_size=size.intermediate_size,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    examples = [_ex(5, 3), _ex(8, 10), _ex(4, 20)]
    batch = collate_packed(pack_examples(examples, [0, 1, 2], max_len=32), pad_id=0)
    packed = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"]).logits[0]
    offset = 0
    for example in examples:
        alone = model(input_ids=torch.tensor([example.input_ids])).logits[0]
        n = len(example.input_ids)
        assert torch.allclose(packed[offset: offset + n], alone, atol=1e-5)
        offset += n
