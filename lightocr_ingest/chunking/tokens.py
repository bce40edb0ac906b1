"""Token counting for chunk budgets: the embedding model's tokenizer, or a documented estimate.

The estimate counts each punctuation mark as one token and each word as one token per six
characters (rounded up). On English prose it overestimates WordPiece/BPE counts by about
10-20%, and on markup (HTML tables, LaTeX) it is close, because those tokenizers also split
``<td>`` or ``\\frac{a}{b}`` at every symbol. Overestimating is the safe side: chunks stay
under the model's real limit. It is additive over whitespace, so packing is exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable

TokenCounter = Callable[[str], int]
_PIECES = re.compile(r"\w+|[^\w\s]", re.UNICODE)
CHARS_PER_WORD_TOKEN = 6


def estimate_tokens(text: str) -> int:
    count = 0
    for piece in _PIECES.findall(text):
        count += -(-len(piece) // CHARS_PER_WORD_TOKEN) if piece[0].isalnum() or piece[0] == "_" else 1
    return count


def tokenizer_counter(name_or_path: str) -> TokenCounter:
    """Count with a Hugging Face tokenizer loaded from a local path or the local cache only."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count
