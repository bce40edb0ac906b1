"""`lightocr-ingest ocr` as a user runs it."""

import subprocess
import sys

from lightocr_ingest.cli import main
from lightocr_ingest.ocr.servers import VLLM_SERVE


def test_ocr_writes_one_markdown_file_per_page(vllm_server, pdf_dir, tmp_path):
    out = tmp_path / "md"
    code = main(["ocr", str(pdf_dir / "report.pdf"), "--ocr-url", vllm_server.url, "--pages", "1,3", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["page-001.md", "page-003.md"]
    assert "<table>" in (out / "page-003.md").read_text()


def test_ocr_prints_markdown_to_stdout(vllm_server, pdf_dir, capsys):
    assert main(["ocr", str(pdf_dir / "columns.pdf"), "--ocr-url", vllm_server.url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!-- columns.pdf page 1 -->") and "$$" in out


def test_ocr_bad_file_is_one_clear_line_and_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"")
    assert main(["ocr", str(bad), "--ocr-engine", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "bad.pdf: file is empty (0 bytes)" in err


def test_ocr_with_the_cpu_engine_in_a_fresh_process(pdf_dir):
    result = subprocess.run([sys.executable, "-m", "lightocr_ingest.cli", "ocr", str(pdf_dir / "report.pdf"),
                             "--pages", "1", "--ocr-url", "http://127.0.0.1:9/v1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Quarterly Report on Water Quality" in result.stdout
    # says what it chose, once, with the whole command to start a server instead
    assert result.stderr.count("OCR engine: CPU (born-digital pages from their text layer") == 1 and VLLM_SERVE in result.stderr
    assert "[RapidOCR]" not in result.stderr  # its INFO chatter is silenced
