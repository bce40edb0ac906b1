"""Hybrid retrieval (dense + BM25 in Qdrant, fused by rank): exact terms found, modes checked,
and the ``evaluate`` command as a user runs it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from llama_index.core import Document

from lightocr_ingest.cli import main
from lightocr_ingest.errors import ConfigError
from lightocr_ingest.pipeline import build_pipeline, parse_config
from lightocr_ingest.retrieval import build_retriever
from lightocr_ingest.retrieval.evaluate import LabelledQuery, evaluate_retriever

from .conftest import pipeline_config

ITEMS = ["hex bolt", "washer", "bearing", "gasket", "hinge", "bracket", "spring", "valve", "fuse", "relay"]


def catalogue() -> tuple[list[Document], list[LabelledQuery]]:
    """Thirty sheets that differ only by a part number and an item: what a dense model blurs."""
    rng = random.Random(7)
    documents, queries = [], []
    for page in range(1, 31):
        code = f"XR-{rng.randint(1000, 9999)}"
        text = (f"# Parts catalogue, sheet {page}\n\nPart {code} is a stainless {ITEMS[page % len(ITEMS)]} for the "
                "pump housing. Order it in boxes of ten; the lead time is two weeks and it fits every model.")
        documents.append(Document(text=text, metadata={"file_name": "catalogue.pdf", "file_path": "catalogue.pdf",
                                                       "file_sha256": "0" * 64, "page": page, "page_label": str(page)}))
        queries.append(LabelledQuery(f"Which sheet lists part {code}?", "catalogue.pdf", (page,)))
    return documents, queries


def config_for(tmp_path, mode: str, collection: str = "parts"):
    return pipeline_config(tmp_path / "qdrant", collection, retrieval={"mode": mode})


@pytest.fixture(scope="module")
def hybrid_collection(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hybrid")
    documents, queries = catalogue()
    config = config_for(tmp_path, "hybrid")
    build_pipeline(config).run(documents=documents)
    return config, queries


def test_exact_part_numbers_that_dense_search_misses_are_found_by_hybrid(hybrid_collection):
    config, queries = hybrid_collection
    with build_retriever(config, k=5, mode="hybrid") as retriever:
        hybrid = evaluate_retriever(retriever, queries, ks=(1, 5))
    with build_retriever(config, k=5, mode="dense") as retriever:  # the same collection, dense half only
        dense = evaluate_retriever(retriever, queries, ks=(1, 5))
    assert dense.recall_at[5] < hybrid.recall_at[5] == 1.0  # the embedding model blurs part numbers, BM25 matches them
    assert hybrid.recall_at[1] > dense.recall_at[1] and hybrid.mrr > dense.mrr


def test_a_hybrid_collection_holds_bm25_vectors_with_the_idf_modifier(hybrid_collection):
    from qdrant_client import models

    from lightocr_ingest.store import DENSE_VECTOR, SPARSE_VECTOR, collection_mode, make_client

    config, _ = hybrid_collection
    client = make_client(config.qdrant.path)
    try:
        params = client.get_collection("parts").config.params
        assert DENSE_VECTOR in params.vectors and params.sparse_vectors[SPARSE_VECTOR].modifier == models.Modifier.IDF
        point = client.scroll("parts", limit=1, with_vectors=True)[0][0]
        assert len(point.vector[SPARSE_VECTOR].indices) > 10 and len(point.vector[DENSE_VECTOR]) == 384
        assert collection_mode(client, "parts") == "hybrid"
    finally:
        client.close()


def test_hybrid_asked_of_a_dense_collection_searches_it_dense_and_says_so_once(tmp_path, caplog):
    documents, _ = catalogue()
    dense = config_for(tmp_path, "dense")
    build_pipeline(dense).run(documents=documents[:3])
    for _ in range(2):
        with build_retriever(dense, k=1, mode="hybrid") as retriever:
            assert retriever.mode == "dense" and len(retriever.retrieve("stainless washer")) == 1
    said = [r.getMessage() for r in caplog.records if "holds no BM25 vectors" in r.getMessage()]
    assert len(said) == 1 and "searching it dense" in said[0] and "--collection NEW" in said[0]
    with pytest.raises(ConfigError, match=r"made for dense search.*--collection NEW.*retrieval.mode: dense"):
        build_pipeline(config_for(tmp_path, "hybrid"))  # writing hybrid points into it
    with pytest.raises(ConfigError, match=r"'sparse' is not one of dense, hybrid"):
        build_retriever(dense, mode="sparse")
    with build_retriever(dense, k=1) as retriever:  # and dense keeps working
        assert len(retriever.retrieve("stainless washer")) == 1


def test_dense_points_are_not_written_into_a_hybrid_collection(hybrid_collection):
    config, _ = hybrid_collection
    dense = parse_config({"qdrant": config.qdrant.model_dump(), "retrieval": {"mode": "dense"}})
    from lightocr_ingest.pipeline import Ingestor

    with pytest.raises(ConfigError, match="is a hybrid collection"):
        Ingestor(dense)


def test_evaluate_command_prints_recall_and_misses_as_json(hybrid_collection, tmp_path, capsys):
    config, queries = hybrid_collection
    questions = tmp_path / "questions.yaml"
    questions.write_text(yaml.safe_dump([{"question": q.question, "file": q.file, "pages": list(q.pages)}
                                         for q in queries[:10]]
                                        + [{"question": "Which sheet lists part ZZ-0000?", "file": "catalogue.pdf",
                                            "pages": [99]}]))
    store = ["--qdrant-path", config.qdrant.path, "--collection", "parts"]
    assert main(["evaluate", str(questions), *store, "--mode", "hybrid", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"recall@1", "recall@3", "recall@5", "MRR", "misses"}
    assert result["recall@5"] == pytest.approx(10 / 11, abs=1e-3)  # the made-up page 99 is the one miss
    assert [m["question"] for m in result["misses"]] == ["Which sheet lists part ZZ-0000?"]
    assert main(["evaluate", str(questions), *store, "-k", "1,2", "--mode", "dense"]) == 0
    out = capsys.readouterr().out
    assert "mode dense" in out and "recall@2" in out and "missed: 'Which sheet lists part ZZ-0000?'" in out
    assert main(["evaluate", str(questions), *store, "-k", "one"]) == 2


def test_query_command_takes_a_mode(hybrid_collection, capsys):
    config, queries = hybrid_collection
    store = ["--qdrant-path", config.qdrant.path, "--collection", "parts"]
    pages = {}
    for mode in ("hybrid", "dense"):
        pages[mode] = []
        for query in queries[:10]:
            assert main(["query", query.question, *store, "--mode", mode, "-k", "5", "--json"]) == 0
            pages[mode].append([json.loads(line)["page"] for line in capsys.readouterr().out.splitlines()])
    assert all(len(found) == 5 for found in pages["hybrid"] + pages["dense"])
    assert all(q.pages[0] in found for q, found in zip(queries, pages["hybrid"]))  # each sheet found
    assert pages["dense"] != pages["hybrid"]  # the flag changed the search


def test_a_question_of_stop_words_only_is_asked_densely(hybrid_collection):
    config, _ = hybrid_collection
    with build_retriever(config, k=3, mode="hybrid") as retriever:
        assert len(retriever.retrieve("which is it?")) == 3  # no BM25 term: the dense half alone answers


def test_the_servers_own_rrf_is_used_when_rrf_k_is_null(hybrid_collection):
    config, queries = hybrid_collection
    own = config.model_copy(deep=True)
    own.retrieval.rrf_k = None
    with build_retriever(own, k=5, mode="hybrid") as retriever:
        hits = retriever.retrieve(queries[0].question)
    assert len(hits) == 5 and queries[0].pages[0] in [h.node.metadata["page"] for h in hits]


def test_the_shipped_hybrid_config_on_an_old_dense_collection_answers_densely_with_one_line(tmp_path, capsys):
    documents, _ = catalogue()
    build_pipeline(config_for(tmp_path, "dense", collection="samples")).run(documents=documents[:2])
    shipped = str(Path(__file__).resolve().parents[1] / "pipelines" / "local.yaml")
    code = main(["query", "washer", "--config", shipped, "--qdrant-path", str(tmp_path / "qdrant"), "--json"])
    captured = capsys.readouterr()
    assert code == 0 and len(captured.out.splitlines()) == 2  # both stored pages found
    err = " ".join(captured.err.split())
    assert err.count("holds no BM25 vectors") == 1 and "searching it dense" in err


def test_evaluate_refuses_an_empty_question_file(tmp_path, capsys):
    empty = tmp_path / "none.yaml"
    empty.write_text("[]\n")
    assert main(["evaluate", str(empty), "--qdrant-path", str(tmp_path / "q")]) == 1
    assert "expected a list of entries with question, file and pages" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_metadata_filters_apply_in_both_modes(hybrid_collection, mode):
    from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

    config, queries = hybrid_collection
    late = MetadataFilters(filters=[MetadataFilter(key="page", value=20, operator=FilterOperator.GTE)])
    with build_retriever(config, k=5, mode=mode, filters=late) as retriever:
        hits = retriever.retrieve(queries[2].question)  # its sheet, page 3, is filtered out
    assert len(hits) == 5 and all(hit.node.metadata["page"] >= 20 for hit in hits)


def test_the_service_answers_a_query_on_a_dense_collection_densely(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from lightocr_ingest.service import ServiceSettings, create_app

    documents, _ = catalogue()
    build_pipeline(config_for(tmp_path, "dense")).run(documents=documents[:3])
    service = ServiceSettings(config=parse_config({"ocr": {"engine": "cpu", "cache_dir": None},
                                                   "qdrant": {"path": str(tmp_path / "qdrant"), "collection": "parts"}}))
    with TestClient(create_app(service)) as client:
        response = client.post("/v1/query", json={"text": "stainless washer", "k": 2})  # the default mode: hybrid
    assert response.status_code == 200, response.text
    assert len(response.json()["hits"]) == 2
