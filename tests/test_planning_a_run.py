"""Planning a run: each file read once (hash, page count and pages from the same bytes), and
Qdrant asked about stored versions once per step of files, not twice per file."""

import builtins
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lightocr_ingest.pipeline import Ingestor
from lightocr_ingest.pipeline import plan as plan_module
from lightocr_ingest.testing import FakeVLLMServer

from .conftest import pipeline_config
from .documents import one_column_pdf


def scan(path: Path, text: str) -> Path:
    image = Image.new("L", (850, 1100), 255)
    ImageDraw.Draw(image).text((80, 100), text, fill=0)
    image.save(path)
    return path


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    made = [one_column_pdf(folder / f"report-{n}.pdf", pages=n + 1, title=f"Report number {n}") for n in range(3)]
    made += [scan(folder / f"scan-{n}.png", f"Scanned letter {n}") for n in range(2)]
    return made


def config(tmp_path, url):
    return pipeline_config(tmp_path / "qdrant", "plan", url=url, ocr={"cache_dir": None})


class Qdrant:
    """Counts what a client is asked, by method."""

    def __init__(self, client, monkeypatch):
        self.calls: dict[str, int] = {}
        for name in ("scroll", "count", "query_points", "retrieve", "delete"):
            original = getattr(client, name)

            def counted(*args, _name=name, _original=original, **kwargs):
                self.calls[_name] = self.calls.get(_name, 0) + 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(client, name, counted)


def test_each_input_file_is_opened_once_per_run(files, tmp_path, monkeypatch):
    wanted = {str(p) for p in files}
    opened: dict[str, int] = {}
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if str(file) in wanted:
            opened[str(file)] = opened.get(str(file), 0) + 1
        return real_open(file, *args, **kwargs)

    with FakeVLLMServer() as server:
        ingestor = Ingestor(config(tmp_path, server.url))
        try:
            monkeypatch.setattr(builtins, "open", counting_open)
            report = ingestor.run([str(tmp_path / "in")])
            monkeypatch.setattr(builtins, "open", real_open)
        finally:
            ingestor.close()
    assert report.ok and report.totals()["pages_seen"] == 1 + 2 + 3 + 1 + 1
    # Hash, page count and rendering all came from one read of each file.
    assert opened == {path: 1 for path in wanted}
    assert all(f.sha256 and len(f.sha256) == 64 for f in report.files)


def test_stored_versions_are_asked_once_per_step_not_per_file(files, tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "STEP_FILES", 2)  # 5 files: steps of 2, 2 and 1
    with FakeVLLMServer() as server:
        ingestor = Ingestor(config(tmp_path, server.url))
        try:
            first = ingestor.run([str(tmp_path / "in")])
            qdrant = Qdrant(ingestor.client, monkeypatch)
            again = ingestor.run([str(tmp_path / "in")])
        finally:
            ingestor.close()
    assert first.ok and first.totals()["pages_ingested"] == 8
    assert [f.status for f in again.files] == ["skipped"] * 5 and again.totals()["ocr_requests"] == 0
    # One scroll per step (3) for what is stored; the two counts are the report's points before and after.
    assert qdrant.calls == {"scroll": 3, "count": 2}


def test_points_of_changed_files_are_looked_up_once_per_step_and_deleted_only_for_them(files, tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "STEP_FILES", 2)  # 5 files: steps of 2, 2 and 1
    deleted: list = []
    with FakeVLLMServer() as server:
        ingestor = Ingestor(config(tmp_path, server.url))
        try:
            ingestor.run([str(tmp_path / "in")])
            before = {p.id: p.payload for p in ingestor.client.scroll("plan", limit=1000)[0]}
            changed = [files[0], files[3]]  # one PDF, one scan: new content at the same paths
            one_column_pdf(changed[0], pages=1, title="Report number 0, revised")
            scan(changed[1], "Scanned letter 0, revised")
            scan(tmp_path / "in" / "scan-new.png", "A letter that came in since")  # read, nothing to delete
            qdrant = Qdrant(ingestor.client, monkeypatch)
            real_delete = ingestor.client.delete
            monkeypatch.setattr(ingestor.client, "delete", lambda *a, **k: (deleted.append(k["points_selector"]),
                                                                             real_delete(*a, **k))[1])
            again = ingestor.run([str(tmp_path / "in")])
            calls = dict(qdrant.calls)
            after = {p.id: p.payload for p in ingestor.client.scroll("plan", limit=1000)[0]}
        finally:
            ingestor.close()
    assert [f.status for f in again.files].count("ok") == 3 and again.totals()["files_skipped"] == 3
    old_ids = {i for i, payload in before.items() if payload["file_path"] in map(str, changed)}
    # The changed files' old points are gone, every other point is as it was, and the new versions are in.
    assert old_ids and not old_ids & after.keys()
    assert {i: p for i, p in before.items() if i not in old_ids}.items() <= after.items()
    assert {p["file_path"] for i, p in after.items() if i not in before} == {*map(str, changed),
                                                                             str(tmp_path / "in" / "scan-new.png")}
    # Per step (6 files in steps of 2): one scroll for what is stored, one for other versions where
    # a file is read (every step here); a delete only for each changed file, none for the new one.
    assert calls["scroll"] == 3 + 3
    assert len(deleted) == 2
    assert sorted(d.filter.must[0].match.value for d in deleted) == sorted(map(str, changed))


def test_progress_total_grows_step_by_step_to_the_pages_of_the_run(files, tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "STEP_FILES", 2)
    totals: list[int] = []
    with FakeVLLMServer() as server:
        ingestor = Ingestor(config(tmp_path, server.url))
        try:
            report = ingestor.run([str(tmp_path / "in")], on_total=totals.append)
        finally:
            ingestor.close()
    assert totals == sorted(totals) and totals[-1] == report.totals()["pages_seen"] == 8
    assert len(set(totals)) > 1  # announced as files were opened, not once after reading them all


def test_steps_hold_a_bounded_number_of_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "STEP_BYTES", 1000)
    paths = []
    for n, size in enumerate([600, 300, 200, 5000, 10]):
        path = tmp_path / f"f{n}.pdf"
        path.write_bytes(b"x" * size)
        paths.append(str(path))
    steps = list(plan_module.Planner.steps(paths))
    # 600+300 fits, +200 would not; a file larger than the bound is a step of its own.
    assert steps == [paths[:2], paths[2:3], paths[3:4], paths[4:]]
