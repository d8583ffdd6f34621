"""Builds a random-weight Llama with a byte-level BPE tokenizer, for tests and benchmarks (no downloads here).

Weight values don't change what the engine does or costs, so a random model of a real architecture stands in
for the real one. The tokenizer is byte-level BPE (onnxruntime-genai rejects WordLevel) with a chat template,
and the model's vocabulary is exactly the tokenizer's size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["<s>", "</s>", "<pad>"]
_WORDS = (
    "the", "a", "one", "two", "cat", "dog", "model", "token", "batch", "queue", "engine", "runs", "fast",
    "slow", "green", "red", "blue", "seven", "over", "under", "gateway", "request", "stream", "answer",
    "prompt", "café", "naïve", "über", "東京", "数据", "😀", "🚀", "hello", "world", "lock", "gate",
)


class LlamaShape(msgspec.Struct, frozen=True):
    hidden: int = 128
    intermediate: int = 256
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 400
    max_position: int = 512
    dtype: str = "float32"


def corpus(n: int, seed: int = 0, pseudo_words: int = 0, common: Sequence[str] = ()) -> list[str]:
    """Sentences of fixed words plus, for large vocabularies, random pseudo-words (more distinct merges to learn).

    ``common`` words fill half of every sentence, so BPE learns each of them (with its leading space) as one
    token: a benchmark whose prompts are made of these words then knows its prompt lengths in tokens.
    """
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = list(_WORDS)
    words += ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(pseudo_words)]

    def word() -> str:
        return rng.choice(common) if common and rng.random() < 0.5 else rng.choice(words)

    return [" ".join(word() for _ in range(rng.randint(4, 16))) + "." for _ in range(n)]


def build_tokenizer(out: Path, vocab: int, *, seed: int = 0, sentences: int = 2000, pseudo_words: int = 0,
                    common: Sequence[str] = ()) -> Any:
    """Train the byte-level BPE and save it (with the chat template) as a ``PreTrainedTokenizerFast`` in ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus(sentences, seed, pseudo_words, common), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")  # type: ignore[no-untyped-call]
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)
    if not tok.encode("some text"):
        raise RuntimeError("the tokenizer encodes text to nothing")
    return tok


def build_random_llama(out: Path, shape: LlamaShape, *, seed: int = 0, sentences: int = 2000,
                       pseudo_words: int = 0, common: Sequence[str] = (), device: str = "cpu") -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(out, shape.vocab, seed=seed, sentences=sentences, pseudo_words=pseudo_words,
                          common=common)
    vocab = len(tok)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.max_position, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    # Built directly on the target device: initialising billions of weights on a CPU takes minutes.
    with torch.device(device):
        model = LlamaForCausalLM(config).to(getattr(torch, shape.dtype))
    model.save_pretrained(out)
    return out
