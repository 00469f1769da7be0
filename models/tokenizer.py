"""A small word-level tokenizer with one token per digit, built locally from the training texts.

Splitting numbers into digits (MathGLM, Yang et al. 2023) lets a tiny model learn arithmetic digit by digit
instead of memorising one embedding per number. Words and symbols carry their leading space; other whitespace\ncharacters are tokens of their own, and the decoder
concatenates tokens with no separator, so `decode(encode(text)) == text` exactly for any text whose words
were seen in training: spaces and newlines of the GSM8K format survive the round trip.

`encode` adds no special tokens; callers add `<s>` / `</s>` themselves (see models/sft_data.py).
"""
from __future__ import annotations

import string
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
# One digit; a run of ASCII letters, a GSM8K calculator bracket `<<`/`>>`, or one other symbol, each with its leading space attached (GPT-2 style,
# which halves sequence length and so the cost of sampling); or one whitespace character.
SPLIT_PATTERN = r"\d| ?[A-Za-z]+| ?<<|>>| ?[^\sA-Za-z\d]|\s"
# Always in the vocabulary, so numbers and symbols never become <unk> even if the texts lack some.
_ALWAYS_KNOWN = string.digits + string.punctuation + string.whitespace


def _with_base_characters(texts: Iterable[str]) -> Iterator[str]:
    yield from texts
    yield _ALWAYS_KNOWN
    yield " " + " ".join(string.punctuation)  # the space-prefixed symbols too
    yield "<< <<>>"  # calculator brackets, with and without a leading space


def build_digit_tokenizer(texts: Iterable[str], model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """Learn a word-level vocabulary from `texts`; special tokens get ids 0-3 (pad, bos, eos, unk)."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1)
    tokenizer.train_from_iterator(_with_base_characters(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        # The default clean-up would delete spaces before punctuation and break the exact round trip.
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
    )
