"""Write a word-level Hugging Face tokenizer (one whitespace-separated word = one token, as the simulator counts)
so aiperf can run offline against the simulator: its default tokenizers download vocabularies at start-up.

Run with the aiperf virtualenv's Python (it has ``tokenizers``): ``python aiperf_word_tokenizer.py OUT_DIR TEXT...``
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # type: ignore[import-not-found]


def main(out: Path, corpora: list[Path]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    words: set[str] = set()
    for path in corpora:
        words |= set(re.findall(r"\S+", path.read_text(errors="ignore")))
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # decodes by joining words with spaces
    tok.train_from_iterator([" ".join(sorted(words))], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "model_max_length": 1_000_000}))
    print(f"{out}: {tok.get_vocab_size()} words")


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
