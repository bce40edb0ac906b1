"""A collection that follows its folder over days (``ingest --prune``, ``--dry-run``): changed files
replaced, renamed files moved without OCR, removed files deleted, and nothing deleted by a run
that stopped early or could not list an input.

Real ingests through the CPU engine (pages read from their text layer) into the embedded store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lightocr_ingest.cli import main
from lightocr_ingest.pipeline import storing
from lightocr_ingest.pipeline.sync import plan_sync
from lightocr_ingest.store import open_client
from lightocr_ingest.store.documents import StoredDocument, list_documents, rename_document

from .conftest import pipeline_config
from .documents import one_column_pdf


def ingest(*extra: str) -> int:
    return main(["ingest", "docs", "--qdrant-path", "store", "--collection", "docs", "--ocr-engine", "cpu", *extra])


def documents() -> dict[str, dict]:
    client = open_client(pipeline_config(Path("store"), "docs").qdrant)
    try:
        return {d.file_path: d.to_json() for d in list_documents(client, "docs")}
    finally:
        client.close()


def points(path: str) -> dict[str, dict]:
    """id -> payload of a document's points."""
    client = open_client(pipeline_config(Path("store"), "docs").qdrant)
    try:
        found, _ = client.scroll("docs", limit=1000, with_payload=True)
        return {str(p.id): p.payload for p in found if p.payload["file_path"] == path}
    finally:
        client.close()


@pytest.fixture
def day_one(tmp_path) -> None:
    (tmp_path / "docs").mkdir()
    one_column_pdf(tmp_path / "docs" / "a.pdf", title="Alpha report")
    one_column_pdf(tmp_path / "docs" / "b.pdf", pages=2, title="Bravo survey")
    one_column_pdf(tmp_path / "docs" / "c.pdf", title="Charlie memo")
    assert ingest("--prune") == 0
    assert set(documents()) == {"docs/a.pdf", "docs/b.pdf", "docs/c.pdf"}


def day_two(tmp_path) -> None:
    """a changed, b moved into a sub-folder under a new name, c removed, d added."""
    one_column_pdf(tmp_path / "docs" / "a.pdf", title="Alpha report, revised")
    (tmp_path / "docs" / "2026").mkdir()
    shutil.move(tmp_path / "docs" / "b.pdf", tmp_path / "docs" / "2026" / "bravo.pdf")
    (tmp_path / "docs" / "c.pdf").unlink()
    one_column_pdf(tmp_path / "docs" / "d.pdf", title="Delta note")


def test_a_folder_kept_in_step_over_days(day_one, tmp_path, capsys):
    before = documents()
    bravo_points = points("docs/b.pdf")
    day_two(tmp_path)

    capsys.readouterr()
    assert ingest("--prune", "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in out) == ["add", "remove", "rename", "replace"]
    assert "rename   docs/b.pdf -> docs/2026/bravo.pdf" in out and "add      docs/d.pdf" in out
    assert any(line.startswith("remove   docs/c.pdf") for line in out) and "replace  docs/a.pdf" in out
    assert documents() == before  # a dry run changes nothing

    assert ingest("--prune", "--report", "run.json") == 0
    after = documents()
    assert set(after) == {"docs/a.pdf", "docs/2026/bravo.pdf", "docs/d.pdf"}
    assert after["docs/a.pdf"]["sha256"] != before["docs/a.pdf"]["sha256"]
    assert after["docs/2026/bravo.pdf"]["sha256"] == before["docs/b.pdf"]["sha256"]
    assert after["docs/2026/bravo.pdf"]["complete"] and after["docs/2026/bravo.pdf"]["file_name"] == "bravo.pdf"

    # The renamed file was not read again: the same points, its pages not in the run, its name
    # changed in the payload and in each node's own metadata (what search results show).
    moved = points("docs/2026/bravo.pdf")
    assert set(moved) == set(bravo_points)
    for payload in moved.values():
        node = json.loads(payload["_node_content"])
        assert node["metadata"]["file_path"] == "docs/2026/bravo.pdf" and node["metadata"]["file_name"] == "bravo.pdf"
    report = json.loads(Path("run.json").read_text())
    read = {f["path"]: len(f["pages"]) for f in report["files"]}
    assert read["docs/2026/bravo.pdf"] == 0 and read["docs/d.pdf"] == 1 and read["docs/a.pdf"] == 1
    assert report["prune"]["renamed"] == [["docs/b.pdf", "docs/2026/bravo.pdf"]]
    assert report["prune"]["removed"] == ["docs/c.pdf"] and report["prune"]["removed_chunks"] >= 1

    capsys.readouterr()
    assert main(["query", "Bravo survey", "--qdrant-path", "store", "--collection", "docs", "--json", "-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["file_name"] == "bravo.pdf"


def test_without_prune_nothing_is_removed_or_renamed(day_one, tmp_path):
    day_two(tmp_path)
    assert ingest() == 0
    assert {"docs/b.pdf", "docs/c.pdf"} <= set(documents())


def test_a_run_that_stops_early_prunes_nothing(day_one, tmp_path, monkeypatch, capsys):
    day_two(tmp_path)

    def broken(self, batch):  # the store fails midway (a full disk, a server gone)
        raise OSError("No space left on device")

    monkeypatch.setattr(storing.StoreStage, "_store", broken)
    with pytest.raises(OSError, match="No space"):
        ingest("--prune")
    assert "docs/c.pdf" in documents() and "were not pruned" in capsys.readouterr().err


def test_a_changed_file_that_cannot_be_read_keeps_its_old_points(day_one, tmp_path, capsys):
    (tmp_path / "docs" / "a.pdf").write_bytes(b"%PDF-1.7 cut short by a copy that failed")
    before = documents()["docs/a.pdf"]
    assert ingest("--prune") == 1  # the file failed: said, and its last good version kept
    assert documents()["docs/a.pdf"] == before
    assert "a.pdf" in capsys.readouterr().err


def test_an_input_that_cannot_be_listed_withholds_the_prune(day_one, tmp_path, capsys):
    day_two(tmp_path)
    capsys.readouterr()
    assert main(["ingest", "docs", "gone/", "--qdrant-path", "store", "--collection", "docs", "--ocr-engine", "cpu",
                 "--prune"]) == 1  # the missing input is a failure of the run
    assert "docs/c.pdf" in documents() and "nothing pruned" in capsys.readouterr().err


def test_a_rename_cut_short_is_finished_by_the_next_run(day_one, tmp_path):
    day_two(tmp_path)
    config = pipeline_config(tmp_path / "store", "docs")
    client = open_client(config.qdrant)
    try:
        (bravo,) = [d for d in list_documents(client, "docs") if d.file_path == "docs/b.pdf"]

        class KilledAfterOne:
            done = 0

            def __getattr__(self, name):
                return getattr(client, name)

            def set_payload(self, *args, **kwargs):
                if self.done:
                    raise KeyboardInterrupt
                self.done += 1
                return client.set_payload(*args, **kwargs)

        with pytest.raises(KeyboardInterrupt):
            rename_document(KilledAfterOne(), "docs", bravo, "docs/2026/bravo.pdf")
        halves = {d.file_path: d.chunks for d in list_documents(client, "docs") if d.sha256 == bravo.sha256}
    finally:
        client.close()
    assert halves == {"docs/b.pdf": bravo.chunks - 1, "docs/2026/bravo.pdf": 1}
    assert ingest("--prune") == 0
    after = documents()
    assert "docs/b.pdf" not in after and after["docs/2026/bravo.pdf"]["chunks"] == bravo.chunks


# --- the plan, whatever the folder did ---------------------------------------------------------
PATHS = st.sampled_from(["a.pdf", "b.pdf", "c.pdf", "sub/a.pdf", "sub/d.pdf"])
HASHES = st.sampled_from(["1" * 64, "2" * 64, "3" * 64, "4" * 64])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(PATHS, HASHES), max_size=6), st.dictionaries(PATHS, HASHES, max_size=5))
def test_every_input_and_every_stored_document_has_exactly_one_fate(stored_pairs, inputs):
    # A collection holds each (path, content) once; one content under two paths is what a
    # rename cut short by a kill leaves.
    stored = [StoredDocument(Path(path).name, path, sha, 1, 1, True, None) for path, sha in sorted(set(stored_pairs))]
    plan = plan_sync(inputs, stored)
    for kind, count in plan.counts().items():
        if count:
            event(kind)
    if len({d.file_path for d in stored if d.sha256 in {d2.sha256 for d2 in stored if d2 is not d}}) > 1:
        event("one content stored under two paths")

    moved = [d for d, _ in plan.renamed]
    kept = [d for d in stored if inputs.get(d.file_path) == d.sha256]
    targets = {path for _, path in plan.renamed}
    left = [d for d in stored if not any(d is x for x in kept + moved + plan.removed)]
    # Every stored document once: kept, renamed, removed, or left to the run that reads its path
    # (an old version: the run replaces it, and a file that fails to read keeps it).
    assert sorted(map(id, kept + moved + plan.removed + left)) == sorted(map(id, stored))
    if left:
        event("an old version left to the run that reads its path")
    assert all(d.file_path in inputs and d.file_path not in targets for d in left)
    assert all(d.file_path not in inputs or d.file_path in targets for d in plan.removed)
    # No content an input has is removed; renamed content lands on an input with that content.
    assert not {d.sha256 for d in plan.removed} & set(inputs.values())
    for document, path in plan.renamed:
        assert inputs[path] == document.sha256 and path != document.file_path
    # Every input once: added, replaced, unchanged, or the path something was renamed to.
    lists = [plan.added, plan.replaced, plan.unchanged, sorted(targets)]
    assert sorted(path for listed in lists for path in listed) == sorted(inputs)
    # After the plan, each input's content is stored under one path of the inputs (or is to be read).
    after = {(path, d.sha256) for d, path in plan.renamed} | {(d.file_path, d.sha256) for d in kept}
    for path in plan.added + plan.replaced:
        assert not any(sha == inputs[path] for _, sha in after)  # to be read: not stored anywhere
