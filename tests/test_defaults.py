"""A new user's first runs: without a config, the recommended settings (hybrid search, an OCR
cache that every run finds whichever folder it starts from); the shipped configs differ from
the defaults only where they say why."""

import logging
import os
from pathlib import Path

from lightocr_ingest.ocr.cache import CACHE_DIR_ENV, resolve_cache_dir
from lightocr_ingest.pipeline import Ingestor, load_config, parse_config
from lightocr_ingest.pipeline.config import PipelineConfig
from lightocr_ingest.store import collection_mode, make_client

REPO = Path(__file__).resolve().parents[1]


def test_auto_is_the_users_cache_folder_wherever_the_command_runs(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    home_cache = str(tmp_path / "home" / ".cache" / "lightocr-ingest" / "ocr")
    assert resolve_cache_dir("auto") == home_cache
    monkeypatch.chdir(tmp_path / "..")
    assert resolve_cache_dir("auto") == home_cache  # not relative to where the command runs
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir("auto") == str(tmp_path / "xdg" / "lightocr-ingest" / "ocr")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert resolve_cache_dir("auto") == str(tmp_path / "mine")
    assert resolve_cache_dir(None) is None
    assert resolve_cache_dir("~/c") == str(tmp_path / "home" / "c")
    assert resolve_cache_dir("rel") == os.path.join(os.getcwd(), "rel")


def test_defaults_make_a_hybrid_collection_and_a_run_from_another_folder_reads_no_page_again(
        vllm_server, pdf_dir, tmp_path, monkeypatch):
    def run_in(folder: Path):
        folder.mkdir()
        monkeypatch.chdir(folder)
        ingestor = Ingestor(parse_config({"ocr": {"url": vllm_server.url}}))  # everything else defaulted
        try:
            return ingestor.run([str(pdf_dir / "report.pdf")])
        finally:
            ingestor.close()

    first = run_in(tmp_path / "one")
    sent = len(vllm_server.requests)
    assert first.ok and sent == 3 and first.totals()["pages_from_cache"] == 0
    client = make_client(str(tmp_path / "one" / ".lightocr" / "qdrant"))
    try:
        assert collection_mode(client, "lightocr") == "hybrid"
    finally:
        client.close()

    second = run_in(tmp_path / "two")  # another folder: a new local Qdrant, the same OCR cache
    assert second.ok and second.totals()["pages_from_cache"] == 3
    assert len(vllm_server.requests) == sent  # no page went to the model again
    assert (tmp_path / "user-cache" / "ocr" / "ocr-cache.sqlite").exists()  # where conftest points "auto"


def test_an_ocr_cache_that_cannot_be_written_is_said_once_and_the_run_goes_on(
        vllm_server, pdf_dir, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="lightocr_ingest")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    ingestor = Ingestor(parse_config({"ocr": {"url": vllm_server.url, "cache_dir": str(blocker / "cache")}}))
    try:
        report = ingestor.run([str(pdf_dir / "report.pdf"), str(pdf_dir / "columns.pdf")])
    finally:
        ingestor.close()
    assert report.ok and report.totals()["pages_ingested"] == 4
    said = [r.getMessage() for r in caplog.records if "no OCR cache this run" in r.getMessage()]
    assert len(said) == 1 and str(blocker / "cache") in said[0] and "ocr.cache_dir" in said[0]


def _differences(config: dict, defaults: dict, where: str = "") -> list[str]:
    found = []
    for key, value in config.items():
        default = defaults.get(key)
        if isinstance(value, dict):
            found += _differences(value, default or {}, f"{where}{key}.")
        elif value != default:
            found.append(f"{where}{key}")
    return found


def test_the_shipped_configs_differ_from_the_defaults_only_where_a_comment_says_why(monkeypatch):
    for name in ("LIGHTONOCR_URL", "VLLM_API_KEY", "QDRANT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")  # vllm.yaml needs both set
    monkeypatch.setenv("LIGHTONOCR_URL", "http://gpu-host:8000/v1")
    defaults = PipelineConfig().model_dump(mode="json")
    for name in ("local.yaml", "vllm.yaml"):
        text = (REPO / "pipelines" / name).read_text()
        shipped = load_config(REPO / "pipelines" / name).model_dump(mode="json")
        differ = _differences(shipped, defaults)
        assert differ  # the comparison sees the configs' own values
        for path in differ:
            key = path.rsplit(".", 1)[-1]
            lines = [line for line in text.splitlines() if line.strip().startswith(f"{key}:")]
            assert lines and all("#" in line for line in lines), f"{name}: {path} differs from the default, say why"


def test_loading_a_config_imports_nothing_heavy():
    """Every process loads configs (the CLI, the service, Ray workers): that must not cost the
    seconds LlamaIndex, the OpenAI client, torch or onnxruntime take to import."""
    import subprocess
    import sys

    heavy = ("llama_index", "openai", "torch", "onnxruntime", "transformers", "qdrant_client", "numpy", "httpx")
    code = ("import sys; from lightocr_ingest.pipeline.config import load_config; "
            f"load_config({str(REPO / 'pipelines' / 'local.yaml')!r}); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", loaded


def test_the_old_heading_flag_means_the_setting_it_named_and_re_embeds_nothing(caplog):
    """``embed_header_path`` (before 0.2.0) is folded into ``embed_headings``: a config that says
    ``true`` keeps the whole path and has the fingerprint of ``embed_headings: path``, so moving
    to the new spelling re-embeds nothing; the old spelling is said to be deprecated."""
    from lightocr_ingest.pipeline.plan import settings_fingerprint

    old = parse_config({"chunking": {"embed_header_path": True}})
    assert old.chunking.embed_headings == "path" and old.chunking.embed_header_path is None
    assert settings_fingerprint(old) == settings_fingerprint(parse_config({"chunking": {"embed_headings": "path"}}))
    assert parse_config({"chunking": {"embed_header_path": False}}).chunking.embed_headings == "none"
    assert settings_fingerprint(old) != settings_fingerprint(parse_config({}))  # the default is section
    assert any("embed_header_path is deprecated" in r.getMessage() and "embed_headings: path" in r.getMessage()
               for r in caplog.records)
