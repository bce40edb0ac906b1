"""The embedded store (Qdrant Edge): each operation the project uses, the LlamaIndex vector store
over it, the same points and answers as qdrant-client's local mode, one process a folder, moving
a local-mode folder in, and copying a collection out to a Qdrant server's API."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (FilterCondition, FilterOperator, MetadataFilter, MetadataFilters,
                                                  VectorStoreQuery, VectorStoreQueryMode)
from qdrant_client import QdrantClient, models

from lightocr_ingest.store import (DENSE_VECTOR, SPARSE_VECTOR, EdgeClient, FolderInUse, collection_mode,
                                   finish_writes, make_client, make_vector_store)
from lightocr_ingest.store.migrate import copy_collection, migrate_local_mode

TOPICS = ["penguins breed on antarctic ice", "wetlands absorb storm surges", "glaciers retreat in warm summers",
          "coral reefs bleach in hot water", "owls hunt at night in forests"]


def nodes(count: int = 40, dim: int = 16, seed: int = 0) -> list[TextNode]:
    """Chunk-like nodes: text, file metadata, a source document each, unit vectors."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        vector = rng.standard_normal(dim)
        node = TextNode(id_=f"00000000-0000-4000-8000-{i:012d}", text=f"{TOPICS[i % 5]} (part {i})",
                        metadata={"file_name": f"doc{i % 4}.pdf", "file_path": f"/in/doc{i % 4}.pdf", "page": i % 7 + 1,
                                  "pages": [i % 7 + 1], "score_hint": float(i)},
                        embedding=(vector / np.linalg.norm(vector)).tolist())
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i % 4}")
        out.append(node)
    return out


def all_points(client, collection: str) -> dict:
    found, offset = {}, None
    while True:
        points, offset = client.scroll(collection, limit=7, offset=offset, with_payload=True, with_vectors=True)
        found.update({str(p.id): (p.payload, p.vector) for p in points})
        if offset is None:
            return found


def same_points(a: dict, b: dict) -> bool:
    """Same ids and payloads, and vectors equal to float precision (a sparse one as index -> value)."""
    def vectors(vector):
        named = vector if isinstance(vector, dict) else {"": vector}
        return {name: dict(zip(v.indices, v.values)) if isinstance(v, models.SparseVector) else np.asarray(v)
                for name, v in named.items()}

    if a.keys() != b.keys():
        return False
    for point_id, (payload, vector) in a.items():
        other_payload, other_vector = b[point_id]
        mine, theirs = vectors(vector), vectors(other_vector)
        if payload != other_payload or mine.keys() != theirs.keys():
            return False
        for name, v in mine.items():
            w = theirs[name]
            if isinstance(v, dict):
                if v.keys() != w.keys() or not np.allclose([v[k] for k in v], [w[k] for k in v], atol=1e-6):
                    return False
            elif not np.allclose(v, w, atol=1e-6):
                return False
    return True


@pytest.fixture
def edge(tmp_path):
    client = make_client(str(tmp_path / "edge"))
    yield client
    client.close()


# ----------------------------------------------------------------------------- each operation

def test_each_client_operation_the_project_uses(edge):
    """Collections, upsert, scroll (paged, filtered), retrieve, count, payload set and delete,
    delete by ids and by filter, payload indexes, query with a filter, optimise, delete collection."""
    assert not edge.collection_exists("c") and edge.get_collections().collections == []
    edge.create_collection("c", vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE))
    assert edge.collection_exists("c") and [c.name for c in edge.get_collections().collections] == ["c"]
    assert edge.get_collection("c").config.params.vectors.size == 3
    with pytest.raises(ValueError, match="already exists"):
        edge.create_collection("c", vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE))
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(10)]
    edge.upsert("c", [models.PointStruct(id=ids[i], vector=[1.0, i / 10, 0.0], payload={"f": f"/f{i % 3}", "i": i})
                      for i in range(10)])
    edge.create_payload_index("c", "f", models.PayloadSchemaType.KEYWORD)
    assert "f" in edge.payload_indexes("c")
    assert len(all_points(edge, "c")) == 10 and all(isinstance(i, str) for i in all_points(edge, "c"))
    where = models.Filter(must=[models.FieldCondition(key="f", match=models.MatchValue(value="/f1"))])
    assert edge.count("c", count_filter=where, exact=True).count == 3
    page, _ = edge.scroll("c", scroll_filter=where, limit=10, with_payload=["i"])
    assert sorted(p.payload["i"] for p in page) == [1, 4, 7] and all(set(p.payload) == {"i"} for p in page)
    edge.set_payload("c", payload={"done": True}, points=[ids[2]])
    assert edge.retrieve("c", [ids[2]], with_payload=True)[0].payload == {"f": "/f2", "i": 2, "done": True}
    edge.delete_payload("c", keys=["done"], points=[ids[2]])
    assert "done" not in edge.retrieve("c", [ids[2]])[0].payload
    hits = edge.query_points("c", query=[1.0, 0.9, 0.0], limit=2, query_filter=models.Filter(
        must_not=[models.FieldCondition(key="i", match=models.MatchAny(any=[9]))])).points
    assert [h.id for h in hits] == [ids[8], ids[7]] and hits[0].score > hits[1].score
    edge.delete("c", points_selector=models.PointIdsList(points=[ids[0]]))
    edge.delete("c", points_selector=models.FilterSelector(filter=where))
    assert edge.count("c").count == 6
    edge.optimize("c")
    assert edge.count("c").count == 6
    assert edge.delete_collection("c") and not edge.collection_exists("c")


def test_filters_translate_condition_by_condition(edge):
    edge.create_collection("c", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    edge.upsert("c", [models.PointStruct(id=i, vector=[1.0, 0.0], payload={"n": i, "tag": f"t{i % 2}", "txt": f"w{i}"})
                      for i in range(1, 9)])

    def matching(condition) -> list[int]:
        points, _ = edge.scroll("c", scroll_filter=models.Filter(must=[condition]), limit=100)
        return sorted(p.id for p in points)

    assert matching(models.FieldCondition(key="n", range=models.Range(gte=3, lt=6))) == [3, 4, 5]
    assert matching(models.FieldCondition(key="tag", match=models.MatchExcept(**{"except": ["t0"]}))) == [1, 3, 5, 7]
    assert matching(models.HasIdCondition(has_id=[2, 5])) == [2, 5]
    assert matching(models.Filter(should=[models.FieldCondition(key="n", match=models.MatchValue(value=1)),
                                          models.FieldCondition(key="n", match=models.MatchValue(value=8))])) == [1, 8]
    assert matching(models.IsEmptyCondition(is_empty=models.PayloadField(key="missing"))) == list(range(1, 9))


# ----------------------------------------------------------------------------- the LlamaIndex store

def test_the_vector_store_writes_the_points_llamaindex_qdrant_store_writes(tmp_path, edge):
    """Same ids, payloads and vectors as LlamaIndex's QdrantVectorStore on local mode, dense and
    hybrid; and the same answers (dense: scores too; exact search on both)."""
    local = QdrantClient(path=str(tmp_path / "local"))
    try:
        for mode in ("dense", "hybrid"):
            ours, theirs = make_vector_store(edge, mode, mode), make_vector_store(local, mode, mode)
            ours.add(nodes())
            theirs.add(nodes())
            assert same_points(all_points(edge, mode), all_points(local, mode))
            if mode == "hybrid":
                assert {DENSE_VECTOR, SPARSE_VECTOR} == set(next(iter(all_points(edge, mode).values()))[1])
            assert collection_mode(edge, mode) == collection_mode(local, mode) == mode
            question = nodes(1, seed=5)[0].embedding
            a = ours.query(VectorStoreQuery(query_embedding=question, similarity_top_k=8))
            b = theirs.query(VectorStoreQuery(query_embedding=question, similarity_top_k=8))
            assert a.ids == b.ids and np.allclose(a.similarities, b.similarities, atol=1e-5)
            assert [n.get_content() for n in a.nodes] == [n.get_content() for n in b.nodes]
    finally:
        local.close()


def test_llamaindex_index_over_the_store_answers_with_metadata_filters(edge):
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    store = make_vector_store(edge, "c", "dense")
    store.add(nodes())
    index = VectorStoreIndex.from_vector_store(store, embed_model=MockEmbedding(embed_dim=16))
    filters = MetadataFilters(filters=[MetadataFilter(key="file_name", value="doc2.pdf"),
                                       MetadataFilter(key="page", value=3, operator=FilterOperator.GTE)])
    found = index.as_retriever(similarity_top_k=20, filters=filters).retrieve("anything")
    expected = {n.node_id for n in nodes() if n.metadata["file_name"] == "doc2.pdf" and n.metadata["page"] >= 3}
    assert {r.node.node_id for r in found} == expected and expected
    either = MetadataFilters(filters=[MetadataFilter(key="file_name", value=["doc0.pdf", "doc1.pdf"],
                                                     operator=FilterOperator.IN),
                                      MetadataFilter(key="score_hint", value=39.0)], condition=FilterCondition.OR)
    got = store.query(VectorStoreQuery(query_embedding=nodes(1)[0].embedding, similarity_top_k=40, filters=either))
    assert {n.metadata["file_name"] for n in got.nodes} == {"doc0.pdf", "doc1.pdf", "doc3.pdf"}
    assert [n.metadata["score_hint"] for n in got.nodes if n.metadata["file_name"] == "doc3.pdf"] == [39.0]


def test_deleting_by_document_and_by_filter_leaves_the_rest(edge):
    store = make_vector_store(edge, "c", "dense")
    store.add(nodes())
    store.delete("doc1")  # LlamaIndex's ref_doc_id
    assert edge.count("c").count == 30
    assert not any(n.ref_doc_id == "doc1" for n in store.get_nodes())
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="page", value=1)]))
    left = store.get_nodes()
    assert len(left) == 30 - sum(1 for n in nodes() if n.metadata["page"] == 1 and n.ref_doc_id != "doc1")
    assert all(n.metadata["page"] != 1 for n in left)
    store.delete_nodes(node_ids=[left[0].node_id])
    assert len(store.get_nodes()) == len(left) - 1


def test_hybrid_query_fuses_dense_and_bm25_in_the_engine(edge):
    store = make_vector_store(edge, "h", "hybrid")
    store.add(nodes())
    question, words = nodes(1, seed=3)[0].embedding, "coral reefs bleach"
    dense = store.query(VectorStoreQuery(query_embedding=question, similarity_top_k=40))
    sparse = store.query(VectorStoreQuery(query_str=words, similarity_top_k=40, mode=VectorStoreQueryMode.SPARSE))
    fused = store.query(VectorStoreQuery(query_embedding=question, query_str=words, similarity_top_k=5,
                                         sparse_top_k=40, mode=VectorStoreQueryMode.HYBRID))
    # Reciprocal rank fusion, k = 2 (Qdrant's default): a point's score is the sum over the two
    # lists of 1 / (2 + its rank there, from 0).
    def rrf(node_id):
        return sum(1 / (2 + ranked.ids.index(node_id)) for ranked in (dense, sparse) if node_id in ranked.ids)

    expected = sorted(set(dense.ids) | set(sparse.ids), key=rrf, reverse=True)
    assert np.allclose(fused.similarities, [rrf(i) for i in fused.ids], atol=1e-6)
    assert [round(rrf(i), 6) for i in fused.ids] == [round(rrf(i), 6) for i in expected[:5]]
    assert any("coral" in n.get_content() for n in fused.nodes)  # the keyword half counts
    keywords = store.query(VectorStoreQuery(query_str="owls hunt", similarity_top_k=3, mode=VectorStoreQueryMode.SPARSE))
    assert all("owls" in n.get_content() for n in keywords.nodes)


# ----------------------------------------------------------------------------- one process a folder

def test_a_second_process_opening_the_folder_is_told_who_holds_it(tmp_path, edge):
    script = ("import sys\nfrom lightocr_ingest.store import make_client, FolderInUse\n"
              "try:\n    make_client(sys.argv[1])\nexcept FolderInUse as exc:\n    print(exc)\n    sys.exit(3)\n")
    held = subprocess.run([sys.executable, "-c", script, str(tmp_path / "edge")], capture_output=True, text=True)
    assert held.returncode == 3, held.stderr
    assert "is open in process" in held.stdout and "--qdrant-url" in held.stdout
    edge.close()  # let go: the next process may open it
    free = subprocess.run([sys.executable, "-c", script, str(tmp_path / "edge")], capture_output=True, text=True)
    assert free.returncode == 0, free.stdout + free.stderr


def test_a_closed_folder_opens_again_in_this_process_with_its_points(tmp_path):
    first = make_client(str(tmp_path / "s"))
    make_vector_store(first, "c", "hybrid").add(nodes())
    finish_writes(first, "c")
    with pytest.raises(FolderInUse):
        EdgeClient(tmp_path / "s")
    first.close()
    again = make_client(str(tmp_path / "s"))
    try:
        assert again.count("c").count == 40 and collection_mode(again, "c") == "hybrid"
    finally:
        again.close()


# ----------------------------------------------------------------------------- moving in and out

def test_a_local_mode_folder_moves_in_on_first_open_with_everything_unchanged(tmp_path, capfd):
    folder = tmp_path / "old"
    local = QdrantClient(path=str(folder))
    make_vector_store(local, "dense", "dense").add(nodes())
    make_vector_store(local, "hybrid", "hybrid").add(nodes(30, seed=1))
    before = {name: all_points(local, name) for name in ("dense", "hybrid")}
    local.close()

    client = make_client(str(folder))
    try:
        assert "moving 2 collection(s)" in capfd.readouterr().err
        for name, points in before.items():
            assert same_points(all_points(client, name), points)
        assert collection_mode(client, "hybrid") == "hybrid"
    finally:
        client.close()
    assert migrate_local_mode(folder) == {}  # once: the next open moves nothing
    assert "moving" not in capfd.readouterr().err


def test_an_interrupted_move_is_made_anew(tmp_path, monkeypatch):
    folder = tmp_path / "old"
    local = QdrantClient(path=str(folder))
    make_vector_store(local, "c", "dense").add(nodes())
    local.close()
    import lightocr_ingest.store.migrate as migrate

    real = migrate.copy_collection

    def dies_half_way(source, name, target, target_name, progress=None, batch=512):
        real(source, name, target, target_name, progress, batch=16)
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate, "copy_collection", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        migrate_local_mode(folder)
    monkeypatch.setattr(migrate, "copy_collection", real)
    client = make_client(str(folder))
    try:
        assert client.count("c").count == 40
        assert [c.name for c in client.get_collections().collections] == ["c"]  # no half-moved leftover
    finally:
        client.close()


def test_copy_moves_a_collection_to_a_server_api_with_the_same_answers(tmp_path, edge):
    """``lightocr-ingest copy --to``'s work, into qdrant-client's local mode (a server's API):
    every point with its vectors and payload, and hybrid search answers the same."""
    store = make_vector_store(edge, "h", "hybrid")
    store.add(nodes())
    target = QdrantClient(path=str(tmp_path / "server"))
    try:
        seen = []
        assert copy_collection(edge, "h", target, "moved", lambda done, total: seen.append((done, total)),
                               batch=16) == 40
        assert seen[-1] == (40, 40) and len(seen) == 3
        assert same_points(all_points(target, "moved"), all_points(edge, "h"))
        assert collection_mode(target, "moved") == "hybrid"
        question = nodes(1, seed=9)[0].embedding
        theirs = make_vector_store(target, "moved", "hybrid")
        dense_here = store.query(VectorStoreQuery(query_embedding=question, similarity_top_k=10))
        dense_there = theirs.query(VectorStoreQuery(query_embedding=question, similarity_top_k=10))
        assert dense_here.ids == dense_there.ids
        with pytest.raises(ValueError, match="already exists"):
            copy_collection(edge, "h", target, "moved")
    finally:
        target.close()


def test_copy_to_a_server_that_does_not_answer_says_what_to_check(tmp_path, capsys):
    from lightocr_ingest.cli import main

    client = make_client(str(tmp_path / "q"))
    make_vector_store(client, "c", "dense").add(nodes(5))
    client.close()
    code = main(["copy", "--qdrant-path", str(tmp_path / "q"), "--collection", "c", "--to", "http://127.0.0.1:9"])
    assert code == 1
    err = capsys.readouterr().err
    assert "did not take the points" in err and "6333" in err and "Traceback" not in err
    assert main(["copy", "--qdrant-path", str(tmp_path / "q"), "--collection", "none", "--to", "http://x"]) == 1
    assert "no collection 'none'" in capsys.readouterr().err
