"""The same file with the same settings gives the same chunks and point ids, however it arrives.

Batch sizes, spool timing, the number of servers and the point an earlier run stopped at must
not change what lands in Qdrant; ``ingest`` and a LlamaIndex ``IngestionPipeline`` give the
same nodes; a re-run through an ``IngestionPipeline`` with a cache skips unchanged pages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.schema import NodeRelationship
from qdrant_client import QdrantClient

from lightocr_ingest.records import OcrRun
from lightocr_ingest.documents import PageDocument
from lightocr_ingest.pipeline import Ingestor, build_pipeline, make_reader, parse_config
from lightocr_ingest.pipeline import storing
from lightocr_ingest.pipeline.report import FileReport, PageReport, RunReport
from lightocr_ingest.pipeline.progress import RunProgress
from lightocr_ingest.pipeline.storing import FileEnd, FileStart, StoreStage
from lightocr_ingest.chunking import MarkdownBlockNodeParser
from lightocr_ingest.store import make_vector_store, stored_versions
from lightocr_ingest.testing import FakeVLLMServer

from .conftest import pipeline_config

REAL = Path(__file__).resolve().parent / "real_documents"


class HashEmbedding(BaseEmbedding):
    """Deterministic 8-dimensional vectors from a text's hash: the store stage without a model."""

    def _vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return [b / 255.0 for b in digest[:8]]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


class StubIngestor:
    """What the store stage uses of an ``Ingestor``, on an in-memory Qdrant."""

    def __init__(self):
        self.client = QdrantClient(":memory:")
        self.collection = "c"
        self.vector_store = make_vector_store(self.client, self.collection)
        self.parser = MarkdownBlockNodeParser(chunk_size=48)
        self.embed_model = HashEmbedding()
        self.fingerprint = "f"
        self.config = parse_config({"ocr": {"max_failed_share": 1.0}})


WORDS = st.sampled_from("river coast delta station sample survey report water flow bank".split())
PAGE = st.lists(st.one_of(st.lists(WORDS, min_size=3, max_size=30).map(lambda w: " ".join(w) + "."),
                          st.lists(WORDS, min_size=1, max_size=3).map(lambda w: "## " + " ".join(w).title())),
                min_size=1, max_size=5).map("\n\n".join)


def page_documents(path: str, markdowns: list[str]) -> list[PageDocument]:
    return [PageDocument(id_=f"{path}-{n}", text=text,
                         metadata={"file_path": path, "file_name": path, "page": n, "page_label": str(n),
                                   "file_sha256": path, "pipeline_fingerprint": "f"})
            for n, text in enumerate(markdowns, start=1)]


def stored(client: QdrantClient) -> dict[str, tuple[str, str | None]]:
    if not client.collection_exists("c"):  # nothing stored (every page furniture or empty)
        return {}
    points, _ = client.scroll("c", limit=10_000, with_payload=True)
    return {str(p.id): (json.loads(p.payload["_node_content"])["text"], p.payload.get("file_complete"))
            for p in points}


def run_stage(files: dict[str, list[str]], batch: int, seed: int, monkeypatch) -> dict:
    """Feed the store stage every file's pages with random pauses (so the spool runs dry at
    random places) and a given chunk batch size; return what it stored."""
    monkeypatch.setattr(storing, "CHUNKS_PER_BATCH", batch)
    ingestor = StubIngestor()
    reports = {path: FileReport(path=path, sha256=path) for path in files}
    rng = random.Random(seed)

    async def main():
        spool: asyncio.Queue = asyncio.Queue()
        stage = StoreStage(ingestor, RunProgress(RunReport("c"), by_path=reports))
        task = asyncio.create_task(stage.run(spool))
        for path, markdowns in files.items():
            await spool.put(FileStart(path))
            for document in page_documents(path, markdowns):
                reports[path].pages.append(PageReport(page=document.metadata["page"], status="ok"))
                await spool.put(document)
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
            await spool.put(FileEnd(path))
        await spool.put(None)
        await task

    asyncio.run(main())
    return stored(ingestor.client)


@settings(max_examples=25, deadline=None)
@given(files=st.lists(st.lists(PAGE, min_size=1, max_size=6), min_size=1, max_size=3),
       batch=st.integers(1, 9), seed=st.integers(0, 1000))
def test_stored_chunks_do_not_depend_on_batches_or_spool_timing(files, batch, seed):
    with pytest.MonkeyPatch.context() as monkeypatch:
        named = {f"/docs/file-{i}.pdf": pages for i, pages in enumerate(files)}
        at_once = run_stage(named, 10_000, 0, monkeypatch)
        split = run_stage(named, batch, seed, monkeypatch)
    assert split == at_once
    parser = MarkdownBlockNodeParser(chunk_size=48)
    expected = [n for path, pages in named.items() for n in parser.chunk_file(page_documents(path, pages))]
    assert set(at_once) == {n.node_id for n in expected}  # and they are the parser's own chunks


def test_a_chunk_may_cross_pages_and_prev_next_link_the_whole_file():
    documents = page_documents("/docs/a.pdf", ["# Intro\n\nThe survey began in spring and",
                                               "continued through the summer months.\n\n## Sites\n\nThree sites.",
                                               "## Results\n\nFlow rose at every site."])
    nodes = MarkdownBlockNodeParser(chunk_size=256).chunk_file(documents)
    assert nodes[0].metadata["pages"] == [1, 2] and "spring and\n\ncontinued" in nodes[0].text
    for before, after in zip(nodes, nodes[1:]):
        assert before.relationships[NodeRelationship.NEXT].node_id == after.node_id
        assert after.relationships[NodeRelationship.PREVIOUS].node_id == before.node_id
    assert NodeRelationship.PREVIOUS not in nodes[0].relationships and NodeRelationship.NEXT not in nodes[-1].relationships
    assert {n.relationships[NodeRelationship.SOURCE].node_id for n in nodes} == {"/docs/a.pdf-1", "/docs/a.pdf-2",
                                                                                 "/docs/a.pdf-3"}
    assert all(set(n.relationships[NodeRelationship.SOURCE].metadata) <= {"file_name", "page"} for n in nodes)


# --- whole runs --------------------------------------------------------------------------------
def text_layer_answer(request) -> str:
    """Each page answered with Markdown made from its own text layer, so regions can be placed."""
    return ANSWERS[request.image_sha256]


ANSWERS: dict[str, str] = {}


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    from lightocr_ingest.ocr.postprocess import text_layer_markdown
    from lightocr_ingest.pages import iter_file_pages

    folder = tmp_path_factory.mktemp("paper")
    path = folder / "paper.pdf"
    path.write_bytes((REAL / "paper-two-column-2.pdf").read_bytes())
    for page in iter_file_pages(path):
        ANSWERS[hashlib.sha256(page.png).hexdigest()] = text_layer_markdown(page.text_layer)
    return path


def config(tmp_path, urls, **ocr):
    return pipeline_config(tmp_path / "qdrant", "paper", url=urls, ocr={"cache_dir": str(tmp_path / "cache"), **ocr},
                           chunk_size=128)


def points_of(ingestor) -> dict[str, dict]:
    points, _ = ingestor.client.scroll(ingestor.collection, limit=1000, with_payload=True)
    return {str(p.id): {"text": json.loads(p.payload["_node_content"])["text"], "regions": p.payload["regions"],
                        "pages": p.payload["pages"]} for p in points}


@pytest.mark.slow
def test_one_server_or_three_and_a_crash_then_resume_store_the_same_points(paper, tmp_path, monkeypatch):
    with FakeVLLMServer(responder=text_layer_answer) as one:
        ingestor = Ingestor(config(tmp_path / "one", one.url, max_in_flight=1))
        assert ingestor.run([str(paper)]).ok
        reference = points_of(ingestor)
        ingestor.close()
    assert reference and all(p["regions"] for p in reference.values())

    servers = [FakeVLLMServer(responder=text_layer_answer, latency_s=s) for s in (0.0, 0.05, 0.2)]
    for server in servers:
        server.start()
    try:
        urls = [s.url for s in servers]
        monkeypatch.setattr(storing, "CHUNKS_PER_BATCH", 3)
        ingestor = Ingestor(config(tmp_path / "three", urls, max_in_flight=2))
        assert ingestor.run([str(paper)]).ok
        assert points_of(ingestor) == reference
        ingestor.close()

        # Killed after its first store batch: the next run stores exactly the same points.
        crashed = Ingestor(config(tmp_path / "crash", urls))
        real_store = crashed.vector_store

        class DiesOnItsSecondBatch:
            calls = 0

            def add(self, nodes, **kwargs):
                self.calls += 1
                if self.calls == 2:
                    raise RuntimeError("killed")
                return real_store.add(nodes, **kwargs)

        crashed.vector_store = DiesOnItsSecondBatch()
        with pytest.raises(RuntimeError, match="killed"):
            crashed.run([str(paper)])
        assert 0 < len(points_of(crashed)) < len(reference)
        crashed.close()
        resumed = Ingestor(config(tmp_path / "crash", urls))
        report = resumed.run([str(paper)])
        assert report.ok and report.files[0].chunks_already_stored == 3
        assert points_of(resumed) == reference
        resumed.close()
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
def test_ingest_and_an_ingestion_pipeline_give_the_same_nodes(paper, tmp_path):
    with FakeVLLMServer(responder=text_layer_answer) as server:
        ingestor = Ingestor(config(tmp_path / "ingest", server.url))
        ingestor.run([str(paper)])
        points, _ = ingestor.client.scroll(ingestor.collection, limit=1000, with_payload=True)
        ingested = {}
        for p in points:
            payload = dict(p.payload)
            payload.pop("file_complete", None)
            node = json.loads(payload.pop("_node_content"))
            ingested[str(p.id)] = (node["text"], {k: v for k, v in node["metadata"].items()})
        ingestor.close()

        cfg = config(tmp_path / "pipeline", server.url)
        documents = make_reader(cfg).load_data(str(paper))
        pipeline = build_pipeline(cfg)
        nodes = pipeline.run(documents=documents)
        pipeline.vector_store.client.close()
    assert {n.node_id: (n.text, n.metadata) for n in nodes} == ingested


def test_an_ingestion_pipeline_with_a_cache_skips_unchanged_pages_on_a_second_run(paper, tmp_path):
    from llama_index.core.ingestion import DocstoreStrategy, IngestionCache
    from llama_index.core.storage.docstore import SimpleDocumentStore

    with FakeVLLMServer(responder=text_layer_answer, latency_s=0.0) as server:
        cfg = config(tmp_path, server.url, cache_dir=None)  # no OCR cache: every read is a new request
        cache, docstore = IngestionCache(), SimpleDocumentStore()
        first_docs = make_reader(cfg).load_data(str(paper))
        second_docs = make_reader(cfg).load_data(str(paper))
        # Same pages, read twice: their hashes match, and how a page was read this time (latency,
        # attempts, cache) is no part of them.
        assert [d.hash for d in first_docs] == [d.hash for d in second_docs]
        hashes = [d.hash for d in second_docs]
        for document in second_docs:
            document.ocr = OcrRun(status="retried", attempts=3, latency_s=12.5, cached=True)
        assert [d.hash for d in second_docs] == hashes
        pipeline = build_pipeline(cfg, cache=cache, docstore=docstore, docstore_strategy=DocstoreStrategy.UPSERTS)
        first = pipeline.run(documents=first_docs)
        second = pipeline.run(documents=second_docs)
        pipeline.vector_store.client.close()
    assert len(first) > 0 and second == []  # nothing changed: nothing re-chunked or re-embedded


def test_a_run_with_failed_pages_replaces_only_what_it_read_again():
    """An old point goes when this run read all its pages again; one holding a page that failed
    now stays, so no text is lost, and no page's text is stored twice where it can be helped."""
    ingestor = StubIngestor()
    pages = ["# One\n\nFirst page text.", "# Two\n\nSecond page text.", "# Three\n\nThird page text."]

    def run(failed: set[int]) -> None:
        report = FileReport(path="/docs/a.pdf", sha256="/docs/a.pdf")

        async def main():
            spool: asyncio.Queue = asyncio.Queue()
            # What the run's plan hands the store stage: the points stored for this version before.
            version = stored_versions(ingestor.client, ingestor.collection, ["/docs/a.pdf"], ingestor.fingerprint)
            already = {"/docs/a.pdf": version["/docs/a.pdf"].points} if version else {}
            progress = RunProgress(RunReport("c"), by_path={"/docs/a.pdf": report}, already=already)
            task = asyncio.create_task(StoreStage(ingestor, progress).run(spool))
            await spool.put(FileStart("/docs/a.pdf"))
            for document in page_documents("/docs/a.pdf", pages):
                page = document.metadata["page"]
                report.pages.append(PageReport(page=page, status="failed" if page in failed else "ok"))
                if page not in failed:
                    await spool.put(document)
            await spool.put(FileEnd("/docs/a.pdf"))
            await spool.put(None)
            await task

        asyncio.run(main())

    run(failed={1})
    first = stored(ingestor.client)
    assert sorted(text for text, _ in first.values()) == ["# Three\n\nThird page text.", "# Two\n\nSecond page text."]
    assert not any(complete for _, complete in first.values())
    run(failed={1, 2, 3})  # a worse run: nothing read, nothing deleted
    assert stored(ingestor.client) == first
    # Page 1 read, page 3 failed: page 2's chunk moves to a new position (a new id) and its old
    # point goes, since page 2 was read again; page 3's old chunk stays, its page was not.
    run(failed={3})
    texts = sorted(text for text, _ in stored(ingestor.client).values())
    assert texts == ["# One\n\nFirst page text.", "# Three\n\nThird page text.", "# Two\n\nSecond page text."]
    run(failed=set())  # every page read: the file is whole and complete
    final = stored(ingestor.client)
    assert len(final) == 3 and sum(bool(complete) for _, complete in final.values()) == 1
