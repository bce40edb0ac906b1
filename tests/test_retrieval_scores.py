"""Retrieval scoring (recall@k, MRR), the labelled questions shipped with the samples, page overlays."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from lightocr_ingest.errors import ConfigError
from lightocr_ingest.retrieval import Outline, boxes_of_chunk, page_with_boxes
from lightocr_ingest.pipeline import Ingestor, parse_config
from lightocr_ingest.retrieval import evaluate_collection, load_queries
from lightocr_ingest.retrieval.evaluate import LabelledQuery, QueryResult, first_relevant_rank, score

REPO = Path(__file__).resolve().parents[1]
QUERY = LabelledQuery("q", "a.pdf", (2, 3))


def test_a_hit_is_relevant_by_file_and_page():
    ranked = [("b.pdf", (2,)), ("a.pdf", (1,)), ("a.pdf", (1, 2)), ("a.pdf", (3,))]
    assert first_relevant_rank(QUERY, ranked) == 3  # a chunk spanning pages 1-2 covers page 2
    assert first_relevant_rank(QUERY, ranked[:2]) is None


def test_recall_and_mrr_by_hand():
    results = [QueryResult(QUERY, [], 1), QueryResult(QUERY, [], 3), QueryResult(QUERY, [], None),
               QueryResult(QUERY, [], 2)]
    scores = score(results, ks=(1, 3, 5))
    assert scores.recall_at == {1: 0.25, 3: 0.75, 5: 0.75}
    assert scores.mrr == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert [r.first_relevant_rank for r in scores.misses(1)] == [3, None, 2]


@given(st.lists(st.one_of(st.none(), st.integers(1, 20)), min_size=1, max_size=30))
def test_recall_grows_with_k_and_bounds_mrr(ranks):
    scores = score([QueryResult(QUERY, [], rank) for rank in ranks], ks=(1, 2, 5, 10, 20))
    values = [scores.recall_at[k] for k in (1, 2, 5, 10, 20)]
    assert values == sorted(values) and all(0 <= v <= 1 for v in values)
    assert scores.recall_at[1] <= scores.mrr <= scores.recall_at[20]


def test_the_shipped_questions_point_at_real_pages():
    queries = load_queries(REPO / "samples" / "queries.yaml")
    assert len(queries) >= 10
    from lightocr_ingest.pages import DocumentSource

    for query in queries:
        with DocumentSource(REPO / "samples" / query.file) as source:
            assert all(1 <= page <= source.source.page_count for page in query.pages), query


@pytest.mark.parametrize("text, problem", [
    ("question: x", "expected a list"),
    ("- question: x\n  file: a.pdf\n", "entry 1 needs question, file and pages"),
    ("- question: x\n  file: a.pdf\n  pages: [0]\n", "entry 1: pages must be page numbers from 1"),
])
def test_bad_query_files_say_which_entry_is_wrong(tmp_path, text, problem):
    path = tmp_path / "queries.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_queries(path)


def test_boxes_are_drawn_where_the_metadata_puts_them(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", (720, 360), "white").save(path, dpi=(72, 72))  # 1 px = 1 pt
    meta = {"page": 1, "figures": [{"ref": "image_1.png", "page": 1, "bbox": [72, 36, 144, 108]}], "regions": []}
    image = page_with_boxes(path, 1, boxes_of_chunk(meta), longest_side=360)  # drawn at half size
    assert image.size == (360, 180)
    assert image.getpixel((36, 40))[0] > 200 > image.getpixel((36, 40))[1]  # red on the box's left edge
    assert image.getpixel((54, 36)) == (255, 255, 255)  # its inside stays white
    assert page_with_boxes(path, 1, [Outline((0, 0, 10, 10), "blue")], longest_side=360).getpixel((1, 1))[2] > 200


@pytest.mark.slow
def test_evaluate_collection_on_the_samples_with_the_embedded_default(tmp_path):
    config = parse_config({"input": {"paths": [str(REPO / "samples")]}, "ocr": {"engine": "cpu"},
                           "qdrant": {"path": str(tmp_path / "q"), "collection": "samples"}})
    ingestor = Ingestor(config)
    assert ingestor.run().ok
    ingestor.close()
    queries = load_queries(REPO / "samples" / "queries.yaml")
    scores = evaluate_collection(config, queries, ks=(1, 5))
    assert len(scores.results) == len(queries)
    # The samples are easy: nearly every question finds its page in the top 5.
    assert scores.recall_at[5] >= 0.8 and scores.mrr >= 0.6, scores.row()
