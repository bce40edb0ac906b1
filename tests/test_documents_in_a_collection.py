"""What a collection holds, document by document, and deleting one (``documents``, ``delete``).

Real ingests through the CPU engine (born-digital pages read from their text layer) into the
embedded store; a deletion must take exactly the document named, never a look-alike.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lightocr_ingest.cli import main
from lightocr_ingest.store import open_client
from lightocr_ingest.store.documents import (NoSuchDocument, StoredDocument, delete_document, list_documents,
                                              select_documents)

from .conftest import pipeline_config
from .documents import one_column_pdf


def ingest(paths: list[Path], collection: str = "docs") -> None:
    assert main(["ingest", *map(str, paths), "--qdrant-path", "store", "--collection", collection,
                 "--ocr-engine", "cpu"]) == 0


def listed(capsys, collection: str = "docs") -> list[dict]:
    capsys.readouterr()
    assert main(["documents", "--qdrant-path", "store", "--collection", collection, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture
def folder(tmp_path) -> dict[str, Path]:
    """Files whose names and paths look alike: the same name in two folders, and a name that
    begins another's."""
    (tmp_path / "docs" / "old").mkdir(parents=True)
    files = {"report": one_column_pdf(tmp_path / "docs" / "report.pdf", pages=2, title="Water report"),
             "report-2": one_column_pdf(tmp_path / "docs" / "report-2.pdf", title="Soil report"),
             "old/report": one_column_pdf(tmp_path / "docs" / "old" / "report.pdf", title="Air report")}
    return {key: path.relative_to(tmp_path) for key, path in files.items()}  # as a user types them here


def test_documents_lists_each_file_with_its_pages_chunks_hash_and_when_it_was_stored(folder, capsys):
    ingest([folder["report"], folder["report-2"]])
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    rows = {row["file_path"]: row for row in listed(capsys)}
    assert set(rows) == {str(folder["report"]), str(folder["report-2"])}
    report = rows[str(folder["report"])]
    assert report["sha256"] == hashlib.sha256(folder["report"].read_bytes()).hexdigest()
    assert report["file_name"] == "report.pdf" and report["pages"] == 2 and report["chunks"] >= 2
    assert report["complete"] is True
    assert datetime.fromisoformat(report["stored_at"]) >= before - timedelta(minutes=5)

    capsys.readouterr()
    assert main(["documents", "--qdrant-path", "store", "--collection", "docs"]) == 0
    shown = capsys.readouterr()
    assert "report-2.pdf" in shown.out and report["sha256"][:12] in shown.out
    assert "2 documents" in shown.err


def test_deleting_by_path_or_hash_takes_that_document_and_nothing_else(folder, capsys):
    ingest(list(folder.values()))
    ingest([folder["report"]], collection="other")  # the same file in a second collection
    rows = {row["file_path"]: row for row in listed(capsys)}
    assert len(rows) == 3

    assert main(["delete", str(folder["report"]), "--qdrant-path", "store", "--collection", "docs", "--yes"]) == 0
    left = {row["file_path"]: row for row in listed(capsys)}
    assert set(left) == {str(folder["report-2"]), str(folder["old/report"])}
    assert all(left[path]["chunks"] == rows[path]["chunks"] for path in left)  # look-alikes untouched
    assert [row["file_path"] for row in listed(capsys, "other")] == [str(folder["report"])]

    # By the start of its hash, and by its absolute path: the same file.
    prefix = rows[str(folder["report-2"])]["sha256"][:10]
    assert main(["delete", prefix, "--qdrant-path", "store", "--collection", "docs", "--yes"]) == 0
    assert [row["file_path"] for row in listed(capsys)] == [str(folder["old/report"])]
    assert main(["delete", str(folder["old/report"].resolve()), "--qdrant-path", "store", "--collection", "docs",
                 "--yes"]) == 0
    assert listed(capsys) == [] and len(listed(capsys, "other")) == 1


def test_a_wrong_name_deletes_nothing_even_beside_a_right_one(folder, capsys):
    ingest([folder["report"], folder["report-2"]])
    code = main(["delete", str(folder["report"]), "docs/report-3.pdf", "--qdrant-path", "store",
                 "--collection", "docs", "--yes"])
    err = capsys.readouterr().err
    assert code == 1 and "docs/report-3.pdf: no document" in err and "nothing deleted" in err
    assert len(listed(capsys)) == 2


def test_a_hash_start_two_files_share_is_refused_and_a_name_stored_elsewhere_is_pointed_to():
    def document(path: str, sha256: str) -> StoredDocument:
        return StoredDocument(Path(path).name, path, sha256, pages=1, chunks=1, complete=True, stored_at=None)

    documents = [document("a/report.pdf", "ab12cd34" + "0" * 56), document("b/report.pdf", "ab12cd34" + "1" * 56),
                 document("b/notes.pdf", "ff" * 32)]
    with pytest.raises(NoSuchDocument, match="several files' hashes"):
        select_documents(documents, "ab12cd34")
    assert [d.file_path for d in select_documents(documents, "ab12cd340")] == ["a/report.pdf"]
    assert [d.file_path for d in select_documents(documents, "FF" * 32)] == ["b/notes.pdf"]
    with pytest.raises(NoSuchDocument, match="stored under that name: a/report.pdf, b/report.pdf"):
        select_documents(documents, "c/report.pdf")
    with pytest.raises(NoSuchDocument, match="lightocr-ingest documents"):
        select_documents(documents, "ab12")  # too short to be a hash: a path, and none such
    # An upload stored as "report.pdf" and a file stored by its absolute path: the same absolute
    # path from here, so neither is taken without the exact name.
    here = [document("report.pdf", "aa" * 32), document(str(Path("report.pdf").resolve()), "bb" * 32)]
    with pytest.raises(NoSuchDocument, match="same file as several stored paths"):
        select_documents(here, "./report.pdf")
    assert [d.sha256 for d in select_documents(here, "report.pdf")] == ["aa" * 32]


def test_delete_asks_first_and_refuses_without_a_terminal_unless_yes(folder, capsys, monkeypatch):
    ingest([folder["report"]])
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(["delete", str(folder["report"]), "--qdrant-path", "store", "--collection", "docs"])
    assert code == 1 and "add --yes" in capsys.readouterr().err
    assert len(listed(capsys)) == 1


def test_a_delete_cut_short_leaves_an_incomplete_document_that_the_next_ingest_repairs(folder, capsys, tmp_path):
    ingest([folder["report"], folder["report-2"]])
    config = pipeline_config(tmp_path / "store", "docs")
    client = open_client(config.qdrant)
    try:
        (report,) = [d for d in list_documents(client, "docs") if d.file_path == str(folder["report"])]

        class KilledMidway:  # the process dies after the mark is off, before the points go
            def __getattr__(self, name):
                return getattr(client, name)

            def delete(self, *args, **kwargs):
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            delete_document(KilledMidway(), "docs", report)
        after = {d.file_path: d for d in list_documents(client, "docs")}
    finally:
        client.close()
    assert after[str(folder["report"])].complete is False and after[str(folder["report"])].chunks == report.chunks
    assert after[str(folder["report-2"])].complete is True  # the other document is as it was
    ingest([folder["report"]])  # reads it again: its chunks are found stored, and it is marked whole
    rows = {row["file_path"]: row for row in listed(capsys)}
    assert rows[str(folder["report"])]["complete"] is True and rows[str(folder["report"])]["chunks"] == report.chunks


def test_cache_prune_drops_old_answers_then_the_oldest_over_the_size(tmp_path, capsys):
    """Pages of deleted files stay in the OCR cache until pruned: by age, then by size, oldest first."""
    import time

    from lightocr_ingest.ocr.cache import OcrCache
    from lightocr_ingest.records import OcrResult

    cache = OcrCache(tmp_path / "ocr")
    now = time.time()
    for number, age_days in enumerate([40, 20, 10, 2, 1]):
        cache.put(f"page-{number}", OcrResult(markdown="x" * 100_000, engine="vllm", model="m", attempts=1))
        cache._db.execute("UPDATE ocr SET created = ? WHERE key = ?", (now - age_days * 86_400, f"page-{number}"))
    cache.close()

    assert main(["cache", "prune", "--cache-dir", str(tmp_path / "ocr"), "--older-than", "30"]) == 0
    assert "pruned 1 cached pages" in capsys.readouterr().err
    # About 100 kB an answer: 0.25 MB keeps the two newest.
    assert main(["cache", "prune", "--cache-dir", str(tmp_path / "ocr"), "--max-size", "0.25"]) == 0
    assert "pruned 2 cached pages" in capsys.readouterr().err
    cache = OcrCache(tmp_path / "ocr")
    try:
        assert [key for key in (f"page-{n}" for n in range(5)) if cache.get(key) is not None] == ["page-3", "page-4"]
    finally:
        cache.close()
    assert main(["cache", "prune", "--cache-dir", str(tmp_path / "ocr")]) == 2  # says what to drop
