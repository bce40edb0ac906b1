"""The embedder's precision (``embedding.precision``): bfloat16 matrix products where the CPU
has AMX, float32 elsewhere; the vectors and rankings it gives against float32's."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lightocr_ingest.embedding import make_embed_model, precision
from lightocr_ingest.errors import ConfigError
from lightocr_ingest.pipeline import Ingestor, load_config, parse_config
from lightocr_ingest.pipeline.plan import settings_fingerprint

REPO = Path(__file__).resolve().parents[1]
PDFS = [*sorted((REPO / "samples").glob("*.pdf")), REPO / "tests/real_documents/paper-one-column-tables.pdf",
        REPO / "tests/real_documents/paper-two-column-1.pdf"]
QUESTIONS = [REPO / "samples/queries.yaml", REPO / "benchmarks/questions/real_documents.yaml"]
COSINE_MIN = 0.9999  # measured 0.99995 at worst over 320 real chunks (benchmarks/embedding.py)
SCORE_NOISE = 0.006  # bfloat16 moves a question-chunk cosine by at most 0.003 (0.0027 measured on a CPU without AMX)


@pytest.fixture(scope="module")
def chunk_texts() -> list[str]:
    """What the embedder sees of the pipeline's chunks of real text layers (~50, ~256 tokens)."""
    from llama_index.core.schema import Document, MetadataMode

    from lightocr_ingest.ocr.postprocess import text_layer_markdown
    from lightocr_ingest.pages import DocumentSource
    from lightocr_ingest.pipeline.build import make_parser

    parser = make_parser(parse_config({}))
    texts = []
    for pdf in PDFS:
        with DocumentSource(pdf) as source:
            pages = [Document(text=text_layer_markdown(source.render_page(n).text_layer or ""),
                              metadata={"file_name": pdf.name, "page": n})
                     for n in range(1, source.source.page_count + 1)]
        texts += [node.get_content(metadata_mode=MetadataMode.EMBED) for node in parser.chunk_file(pages)]
    assert len(texts) > 40
    return texts


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return [q["question"] for path in QUESTIONS for q in yaml.safe_load(path.read_text(encoding="utf-8"))]


@pytest.fixture(scope="module")
def vectors(chunk_texts, questions) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(chunk vectors, question vectors) of each precision, through the pipeline's model."""
    out = {}
    for name in ("float32", "bfloat16"):
        model = make_embed_model(None, "cpu", 32, name)
        assert model.precision == name
        out[name] = (np.asarray(model.get_text_embedding_batch(chunk_texts)),
                     np.asarray([model.get_query_embedding(q) for q in questions]))
    return out


@pytest.mark.slow  # embeds real chunks twice, float32 and bfloat16 (40 s)
def test_bfloat16_vectors_agree_with_float32_on_real_chunks(vectors):
    (chunks32, queries32), (chunks16, queries16) = vectors["float32"], vectors["bfloat16"]
    for a, b in ((chunks32, chunks16), (queries32, queries16)):
        assert (a * b).sum(1).min() >= COSINE_MIN
        assert np.abs(a - b).max() > 1e-5  # bfloat16 did run: float32 repeats itself to ~1e-7
        assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)  # normalised in float32


@pytest.mark.slow  # embeds real chunks twice, float32 and bfloat16 (40 s)
def test_rankings_agree_wherever_float32_tells_the_chunks_apart(vectors, questions):
    """Each question's top 10 chunks: bfloat16 may swap two only when their float32 scores are
    within the noise it adds (near-ties swap; measured 1 top-1 in 60 and 6 top-5 orders)."""
    (chunks32, queries32), (chunks16, queries16) = vectors["float32"], vectors["bfloat16"]
    scores32, scores16 = queries32 @ chunks32.T, queries16 @ chunks16.T
    assert np.abs(scores32 - scores16).max() < SCORE_NOISE / 2
    swapped = []
    for q in range(len(questions)):
        top = np.argsort(-scores32[q])[:10]
        for i, a in enumerate(top):
            for b in top[i + 1:]:
                if scores32[q, a] - scores32[q, b] > SCORE_NOISE and scores16[q, a] <= scores16[q, b]:
                    swapped.append((questions[q], int(a), int(b)))
    assert swapped == []
    same_top5 = np.mean([(np.argsort(-s32)[:5] == np.argsort(-s16)[:5]).all() for s32, s16 in zip(scores32, scores16)])
    assert same_top5 >= 0.8


@pytest.mark.slow  # embeds real chunks twice, float32 and bfloat16 (40 s)
def test_float32_is_sentence_transformers_unchanged(chunk_texts, vectors):
    from sentence_transformers import SentenceTransformer

    from lightocr_ingest.embedding import resolve_model

    plain = SentenceTransformer(resolve_model(None), device="cpu").encode(chunk_texts[:16], normalize_embeddings=True)
    assert np.abs(vectors["float32"][0][:16] - plain).max() < 1e-6


@pytest.mark.slow  # embeds real chunks twice, float32 and bfloat16 (40 s)
def test_bfloat16_holds_in_the_embedding_thread_and_leaks_nowhere(chunk_texts, vectors):
    """The pipeline embeds in a worker thread (asyncio.to_thread): autocast is per thread."""
    model = make_embed_model(None, "cpu", 32, "bfloat16")

    def embed() -> tuple[list[list[float]], bool]:
        return model.get_text_embedding_batch(chunk_texts[:8]), torch.is_autocast_enabled("cpu")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        found, left_on = pool.submit(embed).result()
    assert np.abs(np.asarray(found) - vectors["bfloat16"][0][:8]).max() < 1e-6
    assert not left_on and not torch.is_autocast_enabled("cpu")


def test_auto_is_bfloat16_only_on_a_cpu_with_amx(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: True)
    assert precision.pick_precision("auto", "cpu") == "bfloat16"
    assert precision.pick_precision("auto", "cuda") == "float32"  # a GPU keeps the vectors of earlier runs
    assert precision.pick_precision("auto", "mps") == "float32"
    assert precision.pick_precision("float32", "cpu") == "float32"
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    assert precision.pick_precision("auto", "cpu") == "float32"
    assert precision.pick_precision("bfloat16", "cuda:1") == "bfloat16"


def test_a_onednn_limit_below_amx_counts_as_no_amx(monkeypatch):
    precision.cpu_has_amx.cache_clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    try:
        assert precision.cpu_has_amx() is False
    finally:
        precision.cpu_has_amx.cache_clear()


def test_an_unknown_precision_fails_before_the_model_loads():
    with pytest.raises(ValueError, match="auto, float32, bfloat16"):
        make_embed_model(None, "cpu", 32, "int8")


def test_the_config_field_is_validated(monkeypatch):
    monkeypatch.setenv("LIGHTONOCR_URL", "http://localhost:8000/v1")
    monkeypatch.setenv("QDRANT_URL", "http://localhost:6333")
    assert parse_config({}).embedding.precision == "auto"
    assert parse_config({"embedding": {"precision": "float32"}}).embedding.precision == "float32"
    with pytest.raises(ConfigError, match=r"embedding\.precision.*'auto', 'float32' or 'bfloat16'"):
        parse_config({"embedding": {"precision": "int8"}})
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert "# precision: auto" in text
        uncommented = text.replace("# precision: auto", "precision: auto")
        (Path.cwd() / path.name).write_text(uncommented, encoding="utf-8")  # the test's own folder
        assert load_config(Path.cwd() / path.name).embedding.precision == "auto"


def test_the_pipeline_embeds_in_the_configured_precision(tmp_path):
    config = parse_config({"embedding": {"device": "cpu", "precision": "float32"},
                           "qdrant": {"path": str(tmp_path / "qdrant"), "collection": "c"}})
    ingestor = Ingestor(config)
    try:
        assert ingestor.embed_model.precision == "float32"
    finally:
        ingestor.close()


def test_precision_stays_out_of_the_settings_fingerprint():
    """Vectors move by cosine 1e-4 at most: points stored either way stay valid, no re-ingest."""
    assert (settings_fingerprint(parse_config({"embedding": {"precision": "float32"}}))
            == settings_fingerprint(parse_config({"embedding": {"precision": "bfloat16"}})))


# -- tables reach the model as their cells' text ---------------------------------------------------

TABLE_CHUNK = ("file_name: guide.pdf\nsection: 5 Tables\n\nTable 4. An example landscape table.\n\n"
               "<table><tr><th>Header</th><th>Flux &amp; error</th></tr><tr><td>Unit</td><td>mJy</td></tr>"
               "<tr><td>Data</td><td>12.5</td></tr></table>\n\nThe table continues on the next page.")
TABLE_AS_TEXT = ("file_name: guide.pdf\nsection: 5 Tables\n\nTable 4. An example landscape table.\n\n"
                 "Header Flux & error\nUnit mJy\nData 12.5\n\nThe table continues on the next page.")


def test_a_chunks_html_table_is_embedded_as_its_cells_text_dense_and_bm25():
    """A table written as HTML (LightOnOCR's, the text layer's) spent the model's 256 word pieces
    on tags: the chunk is embedded, dense and BM25, from its cells' text; a query passes as is."""
    from lightocr_ingest.embedding.bm25 import encode_documents
    from lightocr_ingest.embedding.tables import tables_as_text

    assert tables_as_text(TABLE_CHUNK) == TABLE_AS_TEXT
    model = make_embed_model(None, "cpu", 32, "float32")
    as_html, as_text = model.get_text_embedding_batch([TABLE_CHUNK, TABLE_AS_TEXT])
    assert as_html == as_text
    assert not np.allclose(model.get_query_embedding(TABLE_CHUNK), as_text, atol=1e-3)  # queries untouched
    assert encode_documents([TABLE_CHUNK]) == encode_documents([TABLE_AS_TEXT])


WORD = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Z"), blacklist_characters="<>&"), min_size=1,
               max_size=8)
CELL = st.tuples(st.sampled_from(["td", "th"]), st.lists(WORD, max_size=4), st.sampled_from([" ", "<br>", " <br/> "]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(CELL, min_size=1, max_size=5), min_size=1, max_size=6),
       st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<>"), max_size=40),
       st.booleans())
def test_no_cell_text_is_lost_when_a_table_becomes_text(rows, around, closed):
    """Only the tags go: every cell's words, in order and apart, and the text around the table
    stay; header cells, line breaks in cells, and a table cut off before its end too."""
    from lightocr_ingest.embedding.tables import tables_as_text

    table = "<table>" + "".join("<tr>" + "".join(f"<{tag}>{glue.join(words)}</{tag}>" for tag, words, glue in row)
                                + "</tr>" for row in rows) + ("</table>" if closed else "")
    out = tables_as_text(around + "\n\n" + table + ("\n\n" + around if closed else ""))
    assert out.startswith(around + "\n\n") and (not closed or out.endswith("\n\n" + around))
    assert "<" not in out[len(around):len(out) - (len(around) if closed else 0)]
    words = [word for row in rows for _, cell, _ in row for word in cell]
    event("cells with words" if words else "empty cells only")
    assert " ".join(words) in " ".join(out.split())


def test_a_tables_odd_cells_keep_their_text():
    from lightocr_ingest.embedding.tables import tables_as_text

    assert tables_as_text("<table><tr><td>p<0.05</td><td>a<br>b</td></tr></table>") == "p<0.05 a b"
    assert tables_as_text("x <TABLE><tr><th>H</th></tr><tr><td>1</td><td>2") == "x H\n1 2"  # cut before its end
