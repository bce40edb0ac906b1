"""Bad input never stops a batch: each case gets one clear line naming the file (and page)."""

import io
import json
import logging
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image

from lightocr_ingest.cli import main
from lightocr_ingest.errors import InputError
from lightocr_ingest.pages import DocumentSource, iter_file_pages
from lightocr_ingest.pipeline import Ingestor, parse_config
from lightocr_ingest.pipeline.plan import collect_files


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF written by hand, object by object, to build structures no PDF library would write."""
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
GOOD_PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"


def zero_page_pdf(path: Path) -> Path:
    path.write_bytes(raw_pdf([CATALOG, b"<< /Type /Pages /Kids [] /Count 0 >>"]))
    return path


def pdf_with_a_page_pdfium_cannot_load(path: Path) -> Path:
    """Page 2 of 3 is a font dictionary where a page should be: PDFium raises when it loads it."""
    path.write_bytes(raw_pdf([CATALOG, b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >>", GOOD_PAGE,
                              b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", GOOD_PAGE]))
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes whose header promises width x height pixels: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def one_line_error(path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        DocumentSource(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_a_pdf_with_zero_pages(tmp_path):
    assert "has no pages" in one_line_error(zero_page_pdf(tmp_path / "zero.pdf"))


def test_a_page_that_raises_in_pdfium_is_reported_and_the_other_pages_render(tmp_path):
    items = list(iter_file_pages(pdf_with_a_page_pdfium_cannot_load(tmp_path / "broken.pdf")))
    assert [getattr(item, "page", None) for item in items] == [1, 2, 3]
    assert isinstance(items[1], InputError) and not isinstance(items[0], InputError)
    assert str(items[1]).startswith(f"{tmp_path / 'broken.pdf'}, page 2: cannot be rendered")


@pytest.mark.parametrize("page_format", [(841, 1189), (5080, 5080)])  # an A0 poster (mm); a 200 x 200 inch sheet
def test_a_page_of_absurd_size_is_rendered_at_the_model_size(tmp_path, page_format):
    pdf = FPDF(format=page_format, unit="mm")
    pdf.add_page()
    pdf.set_font("Helvetica", size=200)
    pdf.cell(0, 100, "POSTER")
    pdf.output(str(tmp_path / "poster.pdf"))
    (page,) = iter_file_pages(tmp_path / "poster.pdf")
    assert max(page.image_width, page.image_height) == 1540
    assert page.page_width > 2000  # the page's own size (points) is kept in metadata


def test_a_20000_px_image_is_capped_without_holding_it_as_rgb(tmp_path):
    """Rendered in a child process whose peak memory is measured: far below an RGB copy (480 MB)."""
    path = tmp_path / "panorama.png"
    Image.new("L", (20000, 8000), 255).save(path, compress_level=1)
    script = textwrap.dedent(f"""
        import json
        from lightocr_ingest.pages import iter_file_pages
        from lightocr_ingest.pipeline.memory import peak_rss_mb
        (page,) = iter_file_pages({str(path)!r})
        print(json.dumps({{"size": [page.image_width, page.image_height],
                           "peak_mb": peak_rss_mb()}}))
    """)
    result = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                       check=True).stdout)
    assert result["size"] == [1540, 616]
    # Decoding the grey image needs its 160 MB; an RGB copy of it would add 480 MB more.
    assert result["peak_mb"] < 160 + 300


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(30000, 30000))
    assert path.stat().st_size < 2000
    message = one_line_error(path)
    assert "decompression bomb" in message and "downscale" in message


@pytest.mark.parametrize("mode", ["CMYK", "I;16"])
def test_cmyk_and_16_bit_images_are_read(tmp_path, mode):
    path = tmp_path / ("scan.tif" if mode == "CMYK" else "scan.png")
    Image.new(mode, (300, 200), 0).save(path)
    (page,) = iter_file_pages(path)
    assert (page.image_width, page.image_height) == (300, 200)


def test_an_animated_gif_says_only_its_first_frame_is_read(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="lightocr_ingest")
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (60, 60), color) for color in ("red", "green", "blue", "white")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    (page,) = iter_file_pages(path)
    assert Image.open(io.BytesIO(page.png)).getpixel((30, 30)) == (255, 0, 0)  # the first frame
    assert f"{path}: animated GIF with 4 frames: only the first frame is read" in caplog.text


def test_a_symlink_loop_does_not_hang_and_is_named(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 40), "white").save(folder / "sub" / "page.png")
    os.symlink(folder, folder / "sub" / "loop")  # sub/loop -> in: walking it would never end
    os.symlink(folder / "gone.png", folder / "dangling.png")
    files, problems = collect_files([str(folder)], [".png"])
    assert files == [str(folder / "sub" / "page.png")]
    messages = dict(problems)
    assert "symlinked folder not followed" in messages[str(folder / "sub" / "loop")]
    assert "broken symlink" in messages[str(folder / "dangling.png")]


# --- in whole runs ------------------------------------------------------------------------
def test_broken_pages_count_against_the_file_and_the_cli_says_how_to_re_run(vllm_server, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    pdf_with_a_page_pdfium_cannot_load(folder / "one-bad-page.pdf")
    zero_page_pdf(folder / "zero.pdf")
    Image.new("RGB", (200, 100), "white").save(folder / "fine.png")
    report_path = tmp_path / "run.json"
    code = main(["ingest", str(folder), "--qdrant-path", str(tmp_path / "q"), "--ocr-url", vllm_server.url,
                 "--ocr-engine", "vllm", "--report", str(report_path)])
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert code == 1
    assert f"{folder / 'one-bad-page.pdf'}, page 2: failed: cannot be rendered" in err
    assert "run the same command again" in err and "lightocr-ingest ingest " in err
    report = json.loads(report_path.read_text())
    files = {Path(f["path"]).name: f for f in report["files"]}
    # One page of three is over the default share of 10%: the file is failed as a whole.
    assert files["one-bad-page.pdf"]["status"] == "failed" and files["one-bad-page.pdf"]["failed_pages"] == [2]
    assert files["zero.pdf"]["status"] == "failed" and "has no pages" in files["zero.pdf"]["error"]
    assert files["fine.png"]["status"] == "ok"
    page = files["fine.png"]["pages"][0]
    assert {"status", "attempts", "latency_s", "output_tokens", "cached", "error"} <= set(page)
    totals = report["totals"]
    assert totals["pages_seen"] == totals["pages_ingested"] + totals["pages_failed"] == 4
    assert totals["pages_failed"] == 1


def test_a_file_under_the_failed_share_is_partial(vllm_server, tmp_path):
    path = pdf_with_a_page_pdfium_cannot_load(tmp_path / "broken.pdf")
    config = parse_config({"ocr": {"engine": "vllm", "url": vllm_server.url, "max_failed_share": 0.5},
                           "qdrant": {"path": str(tmp_path / "q")}})
    ingestor = Ingestor(config)
    report = ingestor.run([str(path)])
    ingestor.close()
    (file,) = report.files
    assert file.status == "partial" and file.failed_pages == [2] and not report.ok
    assert "1 of 3 pages failed (33%): pages 2" == file.error


def test_a_folder_of_10000_files_mostly_junk_reports_each_and_reads_the_real_ones(vllm_server, tmp_path):
    """10,000 files named .png, all but 12 of them a few bytes of junk: each junk file gets its own
    one-line error and the batch goes on to the end, the 10 real images (spread from the first
    file to the last thousand) are each read once, and byte-identical copies are not read again."""
    folder = tmp_path / "many"
    folder.mkdir()
    real = [f"{i:05d}.png" for i in range(0, 10_000, 1000)]
    for shade, name in enumerate(real):
        Image.new("L", (8, 8), shade * 20).save(folder / name)  # tiny, and each a different page
    copies = ["00500.png", "09999.png"]  # the last file too: nothing stops the batch before it
    for name in copies:
        (folder / name).write_bytes((folder / real[0]).read_bytes())
    for i in range(10_000):
        if not (folder / f"{i:05d}.png").exists():
            (folder / f"{i:05d}.png").write_bytes(b"junk %d" % i)
    ingestor = Ingestor(parse_config({"ocr": {"engine": "vllm", "url": vllm_server.url},
                                      "qdrant": {"path": str(tmp_path / "q")}}))
    report = ingestor.run([str(folder)])
    ingestor.close()
    files = {Path(f.path).name: f for f in report.files}
    assert len(report.files) == len(files) == 10_000  # one report per file: none lost, none twice
    for name in real:
        assert files[name].status == "ok" and [p.status for p in files[name].pages] == ["ok"], name
        assert files[name].chunks > 0, name
    for name in copies:
        assert files[name].status == "skipped" and files[name].duplicate_of == str(folder / real[0]), name
    junk = [f for name, f in files.items() if name not in real and name not in copies]
    assert len(junk) == 9_988 and all(f.status == "failed" for f in junk)
    assert all(f.error.startswith(f.path + ": is not a readable image") and "\n" not in f.error for f in junk)
    # Each real page went to the server exactly once, and what it answered was stored.
    assert len(vllm_server.requests) == len({r.image_sha256 for r in vllm_server.requests}) == len(real)
    assert report.points_after - report.points_before == sum(files[name].chunks for name in real)
