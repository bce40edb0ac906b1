"""The notebooks run headless, top to bottom, against the embedded default (as CI runs them)."""

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # executes the whole notebook (about a minute)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "retrieval_experiments.ipynb"


def test_notebook_is_stored_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_retrieval_notebook_runs_and_shows_pictures_tables_and_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTOCR_NOTEBOOK_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("LIGHTONOCR_URL", "http://127.0.0.1:9/v1")  # nothing there: the CPU engine
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises on any error
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs)
    assert len(images) >= 3  # the pages with boxes, and the two comparison plots
    assert any("heading path" in t and "field-station-handbook.pdf" in t for t in tables)
    assert any("64 tokens, own heading" in t and "whole heading path" in t and "recall@5" in t for t in tables)
    assert any("own heading, dense" in t and "own heading, hybrid" in t for t in tables)  # the modes compared
    assert any("real documents" in t and "hybrid" in t and "recall@5" in t for t in tables)  # on real documents too
    assert "recall@1" in text and "MRR" in text and "questions, dense:" in text and "questions, hybrid:" in text
    assert re.search(r"[1-9]\d* region\(s\) from text_layer", text)  # the hits are placed on their pages
    assert os.path.isdir(tmp_path / "work" / "ocr-cache")  # it worked in the folder it was given
