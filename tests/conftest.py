import logging

import pytest

from lightocr_ingest.notices import forget_warnings
from lightocr_ingest.ocr import engine as engine_module
from lightocr_ingest.ocr.cache import CACHE_DIR_ENV
from lightocr_ingest.testing import FakeVLLMServer

from .documents import one_column_pdf, two_column_pdf


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path, monkeypatch):
    """Relative defaults (.lightocr/qdrant) land in the test's own folder, and so does the OCR
    cache's default (the user's cache folder), so no test reads another's OCR cache or Qdrant,
    the checkout stays clean and the user's own cache is never touched."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "user-cache" / "ocr"))


@pytest.fixture(autouse=True)
def _warnings_said_anew():
    """Warnings are said once per process; each test sees them as a new process would."""
    forget_warnings()


@pytest.fixture(autouse=True)
def _fresh_engine_probe():
    """Each test decides for itself whether a server answers."""
    engine_module._probe_cache.clear()
    yield
    engine_module._probe_cache.clear()


@pytest.fixture
def vllm_server():
    with FakeVLLMServer("lightonai/LightOnOCR-2-1B-bbox") as server:
        yield server
    assert server.violations == [], "requests broke the LightOnOCR request shape"


@pytest.fixture(scope="session")
def pdf_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pdfs")
    one_column_pdf(folder / "report.pdf", pages=3)
    two_column_pdf(folder / "columns.pdf")
    return folder


@pytest.fixture
def caplog_warnings(caplog):
    caplog.set_level(logging.WARNING, logger="lightocr_ingest")
    return caplog
