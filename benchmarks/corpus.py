"""The benchmark's corpus, generated (never downloaded) and kept between runs.

What a document-heavy RAG team feeds the pipeline: many single-page scans (grey PNGs at
200 DPI as office scanners write them, and one in six a colour JPEG at 300 DPI) and a few long PDFs
with a text layer (reports, papers). Every page differs, so no page is answered from the
OCR cache or skipped as a duplicate.

Corpora are named by a preset (``PRESETS``) or written ``SCANS+PDFSxPAGES`` (``173+2x30``). Both
presets keep about three pages in four scans, as in a mailroom-plus-reports intake:

- ``233``: 173 scans + 2 PDFs x 30 pages (42 MB), generated in about 11 s on one core;
- ``1000``: 760 scans + 4 PDFs x 60 pages (184 MB), generated in about 50 s on one core (the
  scans cost most of it, about 65 ms each; a 60-page PDF about 2 s);
- ``quick``: 12 scans + 1 PDF x 8 pages, for smoke runs.

Each is written once under ``ROOT/SCANS-...`` and kept (``build``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

_WORDS = ("the basin river sediment flood survey station sample nitrate phosphate oxygen turbidity rainfall "
          "treatment plant upgrade contract party clause agreement term notice payment schedule annex report "
          "quarter growth rate index region population census median household income estimate").split()


@dataclass(frozen=True)
class CorpusSpec:
    images: int = 240  # single-page scans
    pdfs: int = 2
    pages_per_pdf: int = 60

    @property
    def pages(self) -> int:
        return self.images + self.pdfs * self.pages_per_pdf

    def folder_name(self) -> str:
        return f"images{self.images}-pdfs{self.pdfs}x{self.pages_per_pdf}"

    def describe(self) -> str:
        return f"{self.images} single-page scans + {self.pdfs} PDFs x {self.pages_per_pdf} pages"

    @classmethod
    def parse(cls, text: str) -> "CorpusSpec":
        """A preset's name (``233``, ``1000``, ``quick``) or ``SCANS+PDFSxPAGES``, e.g. ``173+2x30``."""
        if text in PRESETS:
            return PRESETS[text]
        match = re.fullmatch(r"(\d+)\+(\d+)x(\d+)", text.strip())
        if not match:
            raise ValueError(f"corpus {text!r}: a preset ({', '.join(PRESETS)}) or SCANS+PDFSxPAGES, e.g. 173+2x30")
        return cls(*(int(group) for group in match.groups()))


PRESETS = {
    "233": CorpusSpec(173, 2, 30),  # the 233-page mixed run
    "1000": CorpusSpec(760, 4, 60),  # 1,000 pages, the same share of scans (76%)
    "quick": CorpusSpec(12, 1, 8),  # smoke runs
}


def _line(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize()


def scan_page(seed: int, size: tuple[int, int], colour: bool) -> Image.Image:
    """A page as a scanner gives it: a title, body lines, a boxed table, unique text per seed."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB" if colour else "L", size, (250, 248, 240) if colour else 255)
    draw = ImageDraw.Draw(image)
    unit = width // 60
    title, body = ImageFont.load_default(size=unit * 2), ImageFont.load_default(size=unit)
    ink = (20, 20, 60) if colour else 0
    draw.text((unit * 4, unit * 4), f"Document {seed}: {_line(rng, 4)}", fill=(150, 20, 20) if colour else 0,
              font=title)
    y = unit * 9
    while y < height - unit * 12:
        if rng.random() < 0.08:  # a small table
            for row in range(4):
                for col in range(3):
                    x0, y0 = unit * (4 + col * 16), y + row * unit * 2
                    draw.rectangle((x0, y0, x0 + unit * 16, y0 + unit * 2), outline=ink)
                    draw.text((x0 + unit // 2, y0 + unit // 3), f"{rng.uniform(0, 99):.1f}", fill=ink, font=body)
            y += unit * 10
        else:
            draw.text((unit * 4, y), _line(rng, rng.randint(8, 11)), fill=ink, font=body)
            y += int(unit * 1.6)
    draw.text((width // 2, height - unit * 5), str(seed), fill=ink, font=body)
    return image


def long_pdf(path: Path, seed: int, pages: int) -> None:
    from fpdf import FPDF

    rng = random.Random(seed)
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 10, f"{seed}.{number} {_line(rng, 4)}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)
        for _ in range(rng.randint(4, 7)):
            pdf.multi_cell(0, 5, _line(rng, rng.randint(50, 90)) + ".")
            pdf.ln(2)
        with pdf.table(width=120, col_widths=(60, 30, 30)) as table:
            for row in range(4):
                cells = table.row()
                for col in range(3):
                    cells.cell(_line(rng, 2) if col == 0 else f"{rng.uniform(0, 99):.1f}")
        pdf.set_y(-15)
        pdf.cell(0, 10, str(number), align="C")
    pdf.output(str(path))


def build(root: Path, spec: CorpusSpec) -> Path:
    """Write the corpus under ``root`` unless it is already there; return its folder."""
    folder = root / spec.folder_name()
    done = folder / ".complete"
    if done.exists():
        return folder
    (folder / "scans").mkdir(parents=True, exist_ok=True)
    (folder / "reports").mkdir(parents=True, exist_ok=True)
    for number in range(spec.images):
        if number % 6 == 5:  # a colour phone/scanner JPEG at 300 DPI (A4): one scan in six
            scan_page(number, (2480, 3508), colour=True).save(folder / "scans" / f"scan-{number:05d}.jpg", quality=88)
        else:  # a grey office-scanner PNG at 200 DPI (A4)
            scan_page(number, (1654, 2339), colour=False).save(folder / "scans" / f"scan-{number:05d}.png")
    for number in range(spec.pdfs):
        long_pdf(folder / "reports" / f"report-{number:02d}.pdf", 10_000 + number, spec.pages_per_pdf)
    done.touch()
    return folder


def thousand_page_pdf(root: Path) -> Path:
    path = root / "one-thousand-pages.pdf"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        long_pdf(path, 99, 1000)
    return path
