"""Quiet by default: each warning once a process, in at most two lines that name the fix;
nothing about OCR when a run reads nothing; a summary and a progress bar that stay readable
at 80 columns."""

import io
import logging
import re
from pathlib import Path

from rich.console import Console

from lightocr_ingest.cli import main
from lightocr_ingest.console import progress_bar, shorten_middle
from lightocr_ingest.ocr import engine as engine_module
from lightocr_ingest.ocr.engine import EngineSettings, resolve
from lightocr_ingest.ocr.servers import VLLM_SERVE
from lightocr_ingest.cli.summary import summary_table
from lightocr_ingest.pipeline.report import FileReport, PageReport, RunReport

REPO = Path(__file__).resolve().parents[1]
NOBODY = "http://127.0.0.1:9/v1"  # the discard port: nothing answers there


def test_choosing_the_cpu_engine_is_said_once_in_two_lines_with_the_full_vllm_command(caplog):
    caplog.set_level(logging.WARNING, logger="lightocr_ingest")
    for _ in range(3):  # as a service does, request after request
        engine_module._probe_cache.clear()  # probed anew each time, as after a minute
        assert resolve(EngineSettings(kind="auto", url=NOBODY))[0] == "cpu"
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1, said
    assert said[0].count("\n") <= 1 and VLLM_SERVE in said[0] and "--ocr-url" in said[0]
    assert "127.0.0.1:9" in said[0]  # which server did not answer


def test_warnings_reach_the_terminal_unbroken_so_the_command_can_be_copied(capsys):
    from lightocr_ingest.cli import _setup_logging
    from lightocr_ingest.console import stderr

    assert stderr.width <= 80  # not a terminal here: rich's 80 columns
    try:
        _setup_logging(False)
        resolve(EngineSettings(kind="auto", url=NOBODY))
    finally:
        logging.getLogger().handlers.clear()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: ")
    assert VLLM_SERVE in lines[1]  # whole on one line: the terminal wraps it, nothing breaks it


def test_the_vllm_command_in_warnings_is_the_readmes():
    readme = (REPO / "README.md").read_text()
    commands = [" ".join(block.replace("\\\n", " ").split())
                for block in re.findall(r"^vllm serve lightonai/LightOnOCR-2-1B(?:.*\\\n)*.*$", readme, re.M)]
    assert commands and commands[0] == VLLM_SERVE


def test_a_rerun_that_reads_nothing_says_nothing_about_ocr(vllm_server, pdf_dir, tmp_path, capsys):
    from lightocr_ingest.notices import forget_warnings

    command = ["ingest", str(pdf_dir / "report.pdf"), "--ocr-url", vllm_server.url]
    assert main(command) == 0
    first = capsys.readouterr().err
    assert "OCR engine: vLLM" in first  # the first run says which engine reads
    sent = len(vllm_server.requests)
    forget_warnings()  # as a new process would be
    assert main(command) == 0
    second = " ".join(capsys.readouterr().err.split())
    assert "OCR" not in second.replace("OCR cache", "").replace("OCR requests", "")
    assert "3 file(s) skipped" not in second and "1 file(s) skipped" in second
    assert len(vllm_server.requests) == sent


def _report(paths: list[str]) -> RunReport:
    report = RunReport(collection="reports")
    for path in paths:
        report.files.append(FileReport(path=path, pages=[PageReport(page=1, status="ok")], chunks=3))
    return report


def _rendered(renderable, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue().splitlines()


def test_the_summary_tells_files_of_one_folder_apart_at_80_columns():
    folder = "/srv/archive/annual-reports/regional-offices-2025/quarterly-submissions"
    names = ["north-east-quarterly-summary-final.pdf", "north-west-quarterly-summary-final.pdf",
             "a-very-long-name-of-a-scanned-contract-with-an-appendix-and-its-signatures-v2.pdf",
             "a-very-long-name-of-a-scanned-contract-with-an-appendix-and-its-signatures-v3.pdf"]
    lines = _rendered(summary_table(_report([f"{folder}/{name}" for name in names]), 80), 80)
    assert all(len(line) <= 80 for line in lines)
    cells = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert len(cells) == 4 and len(set(cells)) == 4  # every file told apart
    assert "north-east-quarterly-summary-final.pdf" in cells  # whole where it fits
    assert any(cell.startswith("a-very-long") and cell.endswith("-v3.pdf") and "…" in cell for cell in cells)
    assert folder in " ".join(" ".join(lines).split())  # the common folder is said once, in the title


def test_shorten_middle_keeps_both_ends():
    assert shorten_middle("abcdefghij", 20) == "abcdefghij"
    assert shorten_middle("abcdefghij", 7) == "abc…hij"
    assert len(shorten_middle("x" * 100, 31)) == 31


def test_the_progress_bars_times_stay_whole_at_80_columns():
    console = Console(width=80, file=io.StringIO(), color_system=None, legacy_windows=False)
    progress = progress_bar(console)
    task = progress.add_task("Ingest", total=123456, status="98765 chunks  12.34 pages/s  1234 fallback  567 failed")
    progress.update(task, completed=54321)
    lines = _rendered(progress.get_renderable(), 80)
    assert len(lines) == 1 and len(lines[0]) <= 80
    assert len(re.findall(r"\b\d+:\d\d:\d\d\b|-:--:--", lines[0])) == 2, lines[0]  # elapsed and remaining, whole
    assert "54321/123456" in lines[0]
