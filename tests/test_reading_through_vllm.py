"""The reader against a loopback server speaking vLLM's OpenAI wire protocol."""

import asyncio
import dataclasses
import json
import pickle
import re

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from llama_index.core import SimpleDirectoryReader
from llama_index.core.schema import MetadataMode
from PIL import Image

from lightocr_ingest import LightOnOCRReader, OCRServerError, page_document_id
from lightocr_ingest.ocr import VLLMEngine, clean_markdown
from lightocr_ingest.ocr import vllm as vllm_module
from lightocr_ingest.pages import iter_file_pages
from lightocr_ingest.testing import FakeVLLMServer

from .documents import one_column_pdf


def first_page(pdf_dir):
    return next(iter_file_pages(pdf_dir / "report.pdf", pages="1"))


def served_by_id(server):
    """The answers the server gave, keyed by the page id written in each answer."""
    return {re.search(r"Page id (\w+)", r.answer).group(1): r for r in server.requests}


def test_documents_hold_what_the_server_answered(vllm_server, pdf_dir):
    reader = LightOnOCRReader(ocr_url=vllm_server.url)
    documents = reader.load_data(pdf_dir / "report.pdf")
    assert [d.metadata["page"] for d in documents] == [1, 2, 3]
    served = served_by_id(vllm_server)
    assert len(vllm_server.requests) == 3
    for document in documents:
        request = served[re.search(r"Page id (\w+)", document.text).group(1)]
        expected, figures = clean_markdown(request.answer, *request.image_size, figure_boxes=True)
        assert document.text == expected
        assert "$x_" in document.text and r"\$5" in document.text  # escaped math repaired, price kept
        assert "<table>" in document.text and "$$" in document.text
        meta = document.metadata
        assert meta["ocr_engine"] == "vllm" and meta["ocr_model"] == "lightonai/LightOnOCR-2-1B-bbox"
        assert (meta["image_width"], meta["image_height"]) == request.image_size
        # The figure box comes back in page points: 0-1000 of the image -> points of the page.
        (figure,) = document.layout.figures
        (raw,) = figures
        sx, sy = meta["page_width"] / meta["image_width"], meta["page_height"] / meta["image_height"]
        x0, y0, x1, y1 = raw.box
        assert figure.ref == raw.ref
        assert figure.box == pytest.approx((x0 * sx, y0 * sy, x1 * sx, y1 * sy), abs=0.05)
        assert 0 <= figure.box[0] < figure.box[2] <= meta["page_width"]


FIGURE_ANSWER = "Sales by region\n\n![image](image_1.png)102,540,897,811\n\nEnd"


@pytest.mark.parametrize("model, boxed", [
    ("lightonai/LightOnOCR-2-1B-bbox", True),
    ("lightonai/LightOnOCR-2-1B", False),
    ("lightonai/LightOnOCR-1B-1025", False),
    ("scanner-ocr-bbox", True),  # unknown served name: "bbox" in it is enough
])
def test_figure_boxes_are_parsed_only_for_models_that_write_them(pdf_dir, model, boxed):
    """The served model's profile decides (discovered from /v1/models): the same answer gets a
    box, or keeps the digits after its image reference as the text they are."""
    page = next(iter_file_pages(pdf_dir / "report.pdf", pages="1"))

    async def read(url):
        engine = VLLMEngine(url)
        try:
            return await engine.ocr(page)
        finally:
            await engine.aclose()

    with FakeVLLMServer(model, responder=lambda request: FIGURE_ANSWER) as server:
        result = asyncio.run(read(server.url))
    assert server.violations == [] and result.model == model
    (figure,) = result.figures
    assert figure.ref == "image_1.png"
    if boxed:
        assert result.markdown == "Sales by region\n\n![image](image_1.png)\n\nEnd"
        # 0-1000 of the image on each axis -> image pixels
        w, h = page.image_width, page.image_height
        assert figure.box == pytest.approx((0.102 * w, 0.540 * h, 0.897 * w, 0.811 * h), abs=0.05)
    else:
        assert result.markdown == FIGURE_ANSWER
        assert figure.box is None


def test_metadata_and_embedding_text(vllm_server, pdf_dir):
    document = LightOnOCRReader(ocr_url=vllm_server.url, pages="2").load_data(pdf_dir / "report.pdf")[0]
    meta = document.metadata
    assert meta["file_name"] == "report.pdf" and meta["file_path"].endswith("report.pdf")
    assert meta["page"] == 2 and meta["page_label"] == "2" and meta["page_count"] == 3
    assert meta["page_width"] == pytest.approx(595.28, abs=0.1) and meta["page_height"] == pytest.approx(841.89, abs=0.1)
    assert max(meta["image_width"], meta["image_height"]) == 1540
    embed_text = document.get_content(MetadataMode.EMBED)
    assert embed_text.startswith("file_name: report.pdf")
    assert "page_width" not in embed_text and "figures" not in embed_text and "sha256" not in embed_text


def test_ids_depend_on_file_bytes_and_page_only(vllm_server, pdf_dir, tmp_path):
    reader = LightOnOCRReader(ocr_url=vllm_server.url)
    copy = tmp_path / "renamed.pdf"
    copy.write_bytes((pdf_dir / "report.pdf").read_bytes())
    first = [d.id_ for d in reader.load_data(pdf_dir / "report.pdf")]
    again = [d.id_ for d in reader.load_data(copy)]
    assert first == again and len(set(first)) == 3
    other = one_column_pdf(tmp_path / "other.pdf", pages=1, title="Different")
    assert reader.load_data(other)[0].id_ not in first
    assert first[0] == page_document_id(reader.load_data(copy)[0].metadata["file_sha256"], 1)


def test_request_shape_and_sampling_overrides(pdf_dir):
    sampling = {"temperature": 0.4, "top_p": 0.95, "max_tokens": 2048}
    with FakeVLLMServer("lightonai/LightOnOCR-2-1B", expect_sampling=sampling) as server:
        reader = LightOnOCRReader(ocr_url=server.url, temperature=0.4, top_p=0.95, max_tokens=2048, pages="1")
        reader.load_data(pdf_dir / "report.pdf")
        (request,) = server.requests
        assert request.violations == []
        assert request.body["model"] == "lightonai/LightOnOCR-2-1B"  # discovered from /v1/models


@settings(max_examples=60, deadline=None)
@given(model=st.text() | st.sampled_from([vllm_module._IMAGE_MARKER, "a" + vllm_module._IMAGE_MARKER + "b"]),
       png=st.binary(max_size=600), temperature=st.none() | st.floats(0, 2))
def test_the_bytes_sent_are_the_request_body_as_json(pdf_dir, model, png, temperature):
    """The body is built around the image instead of by a JSON encoder: whatever the model's
    name holds (quotes, control characters, any script, even the marker the image is put in
    by), it must parse back to ``request_body``."""
    page = dataclasses.replace(first_page(pdf_dir), png=png)
    engine = VLLMEngine("http://127.0.0.1:9/v1", model=model)
    sent = engine.request_bytes(page, engine.sampling(temperature))
    event(f"the marker in the model's name={vllm_module._IMAGE_MARKER in model}")
    assert json.loads(sent) == engine.request_body(page, temperature)


def test_shape_checker_catches_a_text_prompt():
    """The server's own check must be able to fail, or the tests above prove nothing."""
    server = FakeVLLMServer()
    _, problems = server.check({"model": server.model, "temperature": 0.2, "top_p": 0.9, "max_tokens": 4096,
                                "messages": [{"role": "system", "content": "Transcribe."},
                                             {"role": "user", "content": [{"type": "text", "text": "OCR this"}]}]})
    assert any("exactly one message" in p for p in problems)
    _, problems = server.check({"model": "other", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}]}]})
    assert any("PNG data URL" in p for p in problems) and any("temperature" in p for p in problems)


def test_api_key_is_sent(pdf_dir, monkeypatch):
    with FakeVLLMServer(api_key="k-123") as server:
        with pytest.raises(OCRServerError, match="401"):
            LightOnOCRReader(ocr_url=server.url, ocr_engine="vllm").load_data(pdf_dir / "report.pdf")
        monkeypatch.setenv("LIGHTONOCR_API_KEY", "k-123")
        assert len(LightOnOCRReader(ocr_url=server.url, pages="1").load_data(pdf_dir / "report.pdf")) == 1


def test_simple_directory_reader_with_file_extractor_and_bad_files(vllm_server, pdf_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "report.pdf").write_bytes((pdf_dir / "report.pdf").read_bytes())
    Image.new("RGB", (600, 800), "white").save(folder / "scan.png")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (folder / "empty.pdf").write_bytes(b"")
    reader = LightOnOCRReader(ocr_url=vllm_server.url)
    loader = SimpleDirectoryReader(str(folder), file_extractor={".pdf": reader, ".png": reader})
    documents = loader.load_data()
    assert sorted((d.metadata["file_name"], d.metadata["page"]) for d in documents) == [
        ("report.pdf", 1), ("report.pdf", 2), ("report.pdf", 3), ("scan.png", 1)]
    assert all(d.metadata["file_type"] for d in documents)  # extra_info from SimpleDirectoryReader kept
    printed = capsys.readouterr().out
    assert "broken.pdf: is corrupt or truncated" in printed and "empty.pdf: file is empty" in printed


def test_simple_directory_reader_async_shares_one_window(pdf_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        one_column_pdf(folder / f"doc{i}.pdf", pages=4, title=f"Doc {i}")
    with FakeVLLMServer(latency_s=0.2) as server:
        reader = LightOnOCRReader(ocr_url=server.url, max_in_flight=6)
        loader = SimpleDirectoryReader(str(folder), file_extractor={".pdf": reader})
        documents = asyncio.run(loader.aload_data(num_workers=3))
        assert len(documents) == 12
        # Pages of different files shared the window: more than one file's worth... but never above the cap.
        assert 4 < server.max_in_flight_seen <= 6


def test_aload_data_of_many_files_continues_past_a_bad_one(vllm_server, pdf_dir, tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"")
    reader = LightOnOCRReader(ocr_url=vllm_server.url)
    documents = asyncio.run(reader.aload_data([pdf_dir / "report.pdf", bad, pdf_dir / "columns.pdf"]))
    assert [(d.metadata["file_name"], d.metadata["page"]) for d in documents] == [
        ("report.pdf", 1), ("report.pdf", 2), ("report.pdf", 3), ("columns.pdf", 1)]


def test_load_data_inside_a_running_event_loop(vllm_server, pdf_dir):
    reader = LightOnOCRReader(ocr_url=vllm_server.url)

    async def notebook_cell():
        return reader.load_data(pdf_dir / "report.pdf")  # as in Jupyter: a loop is already running

    assert len(asyncio.run(notebook_cell())) == 3


def test_reader_pickles_for_num_workers(vllm_server, pdf_dir, tmp_path):
    reader = LightOnOCRReader(ocr_url=vllm_server.url, pages="1", api_key="k")
    reader.load_data(pdf_dir / "report.pdf")  # the engine exists now and must not travel
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.ocr_url == vllm_server.url and clone.api_key.get_secret_value() == "k"
    assert len(clone.load_data(pdf_dir / "report.pdf")) == 1
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.pdf").write_bytes((pdf_dir / "report.pdf").read_bytes())
    (folder / "b.pdf").write_bytes((pdf_dir / "columns.pdf").read_bytes())
    documents = SimpleDirectoryReader(str(folder), file_extractor={".pdf": reader}).load_data(num_workers=2)
    assert sorted(d.metadata["file_name"] for d in documents) == ["a.pdf", "b.pdf"]


def test_engine_vllm_never_falls_back(pdf_dir):
    reader = LightOnOCRReader(ocr_url="http://127.0.0.1:9/v1", ocr_engine="vllm")
    with pytest.raises(OCRServerError, match="vllm serve lightonai/LightOnOCR-2-1B"):
        reader.load_data(pdf_dir / "report.pdf")


def test_a_page_the_server_fails_is_reported_not_lost(pdf_dir):
    def responder(request):
        raise RuntimeError("boom")

    with FakeVLLMServer(responder=responder) as server:
        reader = LightOnOCRReader(ocr_url=server.url, max_retries=0, pages="1-2", fallbacks=())
        documents = reader.load_data(pdf_dir / "report.pdf")
    assert [d.metadata["ocr_status"] for d in documents] == ["failed", "failed"]
    assert all("500" in d.metadata["ocr_error"] for d in documents)


def test_reads_through_an_fsspec_filesystem(vllm_server, pdf_dir):
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    fs.pipe("/bucket/report.pdf", (pdf_dir / "report.pdf").read_bytes())
    reader = LightOnOCRReader(ocr_url=vllm_server.url)
    documents = SimpleDirectoryReader("/bucket", fs=fs, file_extractor={".pdf": reader}).load_data()
    assert [d.metadata["page"] for d in documents] == [1, 2, 3]
    assert documents[0].metadata["file_name"] == "report.pdf"


def test_an_answer_that_is_not_a_chat_completion_fails_the_page_and_says_so(pdf_dir):
    """A proxy's HTML page answered with 200: the page fails with a message naming the server."""
    import http.server
    import json
    import threading

    class NotVLLM(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self._answer("application/json", json.dumps({"data": [{"id": "lightonai/LightOnOCR-2-1B"}]}))

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer("text/html", "<html><body>Welcome to nginx!</body></html>")

        def _answer(self, kind, text):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotVLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        reader = LightOnOCRReader(ocr_url=url, max_retries=0, pages="1", fallbacks=())
        [document] = reader.load_data(pdf_dir / "report.pdf")
    finally:
        server.shutdown()
    assert document.metadata["ocr_status"] == "failed"
    assert "not a chat completion" in document.metadata["ocr_error"] and "Welcome to nginx" in document.metadata["ocr_error"]
    assert url in document.metadata["ocr_error"]


def test_parse_completion_reads_content_finish_reason_and_tokens():
    from lightocr_ingest.ocr.vllm import parse_completion

    answer = ('{"choices": [{"message": {"role": "assistant", "content": "# Title"}, "finish_reason": "length"}],'
              ' "usage": {"completion_tokens": 4096}}')
    assert parse_completion(answer) == ("# Title", "length", 4096)
    assert parse_completion('{"choices": []}') == ("", None, None)
    for junk in ("<html>", "[1, 2]", '{"choices": "no"}'):
        with pytest.raises(ValueError, match="not a chat completion"):
            parse_completion(junk)


def test_a_window_spread_over_several_connection_pools_stays_full_on_kept_alive_connections(tmp_path, monkeypatch):
    import lightocr_ingest.ocr.vllm as vllm_module

    monkeypatch.setattr(vllm_module, "CONNECTIONS_PER_POOL", 4)  # a window of 10: 3 pools of at most 4
    pages = [page for page in iter_file_pages(one_column_pdf(tmp_path / "long.pdf", pages=12))] * 2
    peaks, out = [0, 0, 0], [0, 0, 0]

    def counting(pool: int, post):
        async def post_counted(*args, **kwargs):
            out[pool] += 1
            peaks[pool] = max(peaks[pool], out[pool])
            try:
                return await post(*args, **kwargs)
            finally:
                out[pool] -= 1
        return post_counted

    async def two_rounds(engine):
        await engine.start()
        clients = engine._servers[0].clients
        assert len(clients) == 3
        for pool, client in enumerate(clients):
            client.post = counting(pool, client.post)
        for _ in range(2):
            await asyncio.gather(*(engine.complete(page) for page in pages))
        await engine.aclose()
        return clients

    with FakeVLLMServer(latency_s=0.3) as server:
        clients = asyncio.run(two_rounds(VLLMEngine(server.url, max_in_flight=10)))
        assert len(server.requests) == 48
        assert server.max_in_flight_seen == 10  # the whole window in flight, over the pools together
        assert all(1 <= peak <= 4 for peak in peaks), peaks  # every pool used, none over its size
        # Every connection kept alive and used again: never more than the window's worth.
        assert len(server.connections) <= 12, server.connections
        assert all(client.is_closed() for client in clients)


def test_without_aiohttps_adapter_the_client_falls_back_to_httpx(pdf_dir, monkeypatch):
    """openai's aiohttp client raises RuntimeError when its adapter cannot load: pages are
    still read, over httpx's client."""
    import openai

    def unavailable(**_):
        raise RuntimeError("To use the aiohttp client you must have installed the package with the `aiohttp` extra")

    monkeypatch.setattr(openai, "DefaultAioHttpClient", unavailable)
    with FakeVLLMServer() as server:
        engine = VLLMEngine(server.url, model="lightonai/LightOnOCR-2-1B")
        assert all(type(c._client).__name__ != "_InstalledAioHttpClient" for c in engine._servers[0].clients)
        documents = LightOnOCRReader(ocr_url=server.url, ocr_engine="vllm").load_data(pdf_dir / "report.pdf")
    assert documents and all(d.metadata["ocr_status"] == "ok" for d in documents)
