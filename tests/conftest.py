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


def pipeline_config(qdrant, collection: str, *, url=None, ocr: dict | None = None, chunk_size: int | None = None,
                    as_dict: bool = False, **sections):
    """The pipeline config a test runs under, the one builder the test files share: the OCR
    server at ``url`` (engine vllm; the CPU engine when None and ``ocr`` names no engine), a
    local Qdrant folder ``qdrant`` and ``collection``, ``chunk_size`` tokens, and any other
    section as given. ``as_dict``: the YAML's data instead (tests that write a config file)."""
    from lightocr_ingest.pipeline import parse_config

    data: dict = {key: dict(value) if isinstance(value, dict) else value for key, value in sections.items()}
    ocr_section = dict(ocr or {})
    if url is not None:
        ocr_section = {"engine": "vllm", "url": url, **ocr_section}
    if ocr_section:
        data["ocr"] = {**data.get("ocr", {}), **ocr_section}
    if chunk_size is not None:
        data.setdefault("chunking", {})["chunk_size"] = chunk_size
    data["qdrant"] = {"path": str(qdrant), "collection": collection, **data.get("qdrant", {})}
    return data if as_dict else parse_config(data)


def service_settings(folder, url: str | None = None, *, ocr: dict | None = None, **limits):
    """The service's settings a test runs under, the one builder the service tests share: the OCR
    server at ``url`` (else the CPU engine), no OCR cache, collection "svc" in ``folder``/qdrant,
    and the limits (``ServiceSettings`` fields) as given."""
    from lightocr_ingest.service.settings import ServiceSettings

    ocr = {"cache_dir": None, **({} if url else {"engine": "cpu"}), **(ocr or {})}
    return ServiceSettings(config=pipeline_config(folder / "qdrant", "svc", url=url, ocr=ocr), **limits)


def until(condition, timeout_s: float, what: str) -> None:
    """Wait for a condition whose timing the test does not control (a thread's or a server's
    progress); the deadline only ends a hung test, it is never what the test measures."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.02)


async def until_async(condition, timeout_s: float, what) -> None:
    """``until`` inside an event loop: the loop's other tasks (a test's own clients) run while it
    waits. ``what`` may be a callable, to say what was seen when the deadline passed."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what() if callable(what) else what}: not within {timeout_s} s")
        await asyncio.sleep(0.01)
