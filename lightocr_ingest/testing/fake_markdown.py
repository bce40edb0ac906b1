"""LightOnOCR-2-style Markdown of a chosen length, for the throughput benchmark's simulated server:
headings, paragraphs, HTML tables and ``$$`` math, so chunking and embedding downstream do
realistic work."""

from __future__ import annotations

import random

CHARS_PER_TOKEN = 3.6  # Qwen3 tokenizer on English prose mixed with HTML tables and LaTeX

_WORDS = ("the basin river sediment flood survey station sample nitrate phosphate oxygen turbidity rainfall "
          "treatment plant upgrade model score baseline training loss accuracy table figure section results "
          "contract party clause agreement term notice payment schedule annex report quarter growth rate "
          "index region population census median household income estimate variance sample").split()


def markdown_of_length(seed: int, tokens: int) -> str:
    """LightOnOCR-2-style Markdown of about ``tokens`` tokens, different for each seed."""
    rng = random.Random(seed)
    target = int(tokens * CHARS_PER_TOKEN)
    parts: list[str] = [f"Report {seed % 997} - page {seed % 211}", f"# {rng.randint(1, 9)} {_title(rng)}"]
    size = sum(len(p) + 2 for p in parts)
    section = 1
    while size < target:
        kind = rng.random()
        if kind < 0.12:
            section += 1
            part = f"## {section}.{rng.randint(1, 9)} {_title(rng)}"
        elif kind < 0.22:
            rows = "".join(f"<tr><td>{_title(rng)}</td><td>{rng.uniform(0, 100):.1f}</td>"
                           f"<td>{rng.uniform(0, 100):.1f}</td></tr>" for _ in range(rng.randint(3, 8)))
            part = f"<table><tr><th>Item</th><th>{_title(rng)}</th><th>Change</th></tr>{rows}</table>"
        elif kind < 0.28:
            part = "$$\n\\hat{y}_i = \\sum_{j=1}^{%d} w_j x_{ij} + b\n$$" % rng.randint(2, 9)
        else:
            words = [rng.choice(_WORDS) for _ in range(rng.randint(40, 110))]
            part = " ".join(words).capitalize() + f" with $x_{rng.randint(1, 9)}$ held fixed."
        parts.append(part)
        size += len(part) + 2
    parts.append(str(seed % 300 + 1))
    return "\n\n".join(parts)


def _title(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 4))).capitalize()
