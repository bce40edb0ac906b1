"""The HTTP service: OCR, ingestion jobs, search, errors, auth, metrics (in-process, loopback only)."""

import contextlib
import hashlib
import io
import logging
import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

pytest.importorskip("fastapi", reason="the service extra is not installed: pip install 'lightocr-ingest[service]'")
from fastapi.testclient import TestClient  # noqa: E402

from lightocr_ingest import LightOnOCRReader  # noqa: E402
from lightocr_ingest.pipeline import parse_config  # noqa: E402
from lightocr_ingest.service import ServiceSettings, create_app  # noqa: E402
from lightocr_ingest.testing import FakeVLLMServer  # noqa: E402

from .conftest import service_settings  # noqa: E402
from .documents import encrypted_pdf, one_column_pdf  # noqa: E402


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("documents")
    one_column_pdf(folder / "report.pdf", pages=3, title="Sediment survey of the Varna basin")
    return folder


@pytest.fixture(scope="module")
def vllm(documents):
    """Answers the pages of ``documents`` with their own text layer (so chunks find their regions),
    any other page as LightOnOCR-style Markdown."""
    from lightocr_ingest.ocr.postprocess import text_layer_markdown
    from lightocr_ingest.pages import iter_file_pages
    from lightocr_ingest.testing.vllm_server import lightonocr_style_page

    answers = {hashlib.sha256(page.png).hexdigest(): text_layer_markdown(page.text_layer or "")
               for page in iter_file_pages(documents / "report.pdf")}
    with FakeVLLMServer(responder=lambda r: answers.get(r.image_sha256) or lightonocr_style_page(r.image_sha256)) as server:
        server.answers = answers  # for the failure messages below
        yield server


@pytest.fixture
def client(tmp_path, vllm):
    with TestClient(create_app(service_settings(tmp_path, vllm.url, max_pages=5, max_upload_mb=1))) as test_client:
        yield test_client


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "suggestion", "request_id"}
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    assert body["error"]["suggestion"]
    return body["error"]


def test_ocr_answers_every_page_with_the_readers_metadata(client, documents, vllm):
    pdf = documents / "report.pdf"
    response = client.post("/v1/ocr", files={"file": ("report.pdf", pdf.read_bytes(), "application/pdf")},
                           data={"pages": "2-3", "html": "true", "chunks": "true", "images": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["file_name"] == "report.pdf" and body["page_count"] == 3
    assert [p["page"] for p in body["pages"]] == [2, 3]
    expected = LightOnOCRReader(ocr_engine="vllm", ocr_url=vllm.url, pages="2").load_data(pdf)[0]
    page = body["pages"][0]
    # What each request showed the server (a page rendered differently is not among the answers).
    seen = [(r.image_sha256[:12], r.image_size, r.image_sha256 in vllm.answers) for r in vllm.requests]
    assert page["markdown"] == expected.text, (f"service: {page['metadata'].get('ocr_status')}, reader: "
                                               f"{expected.metadata.get('ocr_status')}; requests: {seen}")
    assert set(page["metadata"]) == set(expected.metadata) - {"file_path"}  # the upload's temp path stays inside
    assert page["metadata"]["file_name"] == "report.pdf" and page["metadata"]["image_width"] > 0
    assert page["image"].startswith("data:image/png;base64,") and "<p>Sediment survey" in page["html"]
    assert body["chunks"] and all(c["regions"] for c in body["chunks"]) and {c["page"] for c in body["chunks"]} <= {2, 3}


def test_page_html_keeps_tables_and_math_and_drops_scripts():
    from lightocr_ingest.service.page_html import page_html

    html = page_html("# Costs\n\nWhere $x^2$ holds <script>alert(1)</script>\n\n"
                     "<table><tr><td onclick='steal()'>4.2</td></tr></table>\n\n$$\n\\frac{a}{b}\n$$")
    assert "<h1>Costs</h1>" in html and "<td>4.2</td>" in html and "onclick" not in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("<math") == 2 and "<mfrac>" in html


def test_page_html_keeps_shell_sessions_as_code_and_opens_math_only_within_a_line():
    from lightocr_ingest.service.page_html import page_html

    html = page_html("Install:\n$ pip install foo\n$ foo --check \\\n> --verbose\nok: 3 files\n\n"
                     "> a quotation\n\nPrices $5 and $10, then $x^2$ and `echo $HOME` and $y\n= 2$ here.\n\n"
                     "Revenue grew to\n$ 500 million")
    assert "<pre><code>$ pip install foo\n$ foo --check \\\n&gt; --verbose\nok: 3 files\n</code></pre>" in html
    assert "<blockquote>" in html and html.count("<blockquote>") == 1  # only the real quotation
    assert html.count("<math") == 1 and "<msup><mi>x</mi><mn>2</mn></msup>" in html  # $x^2$, nothing else
    assert "Prices $5 and $10" in html and "<code>echo $HOME</code>" in html and "$y\n= 2$" in html
    assert "<p>Revenue grew to\n$ 500 million</p>" in html  # an amount split by a line break is no prompt


def test_math_pairs_read_dollars_as_the_fixer_does():
    import re

    from lightocr_ingest.ocr.postprocess import math_pairs, reads_as_math

    def pairs(line):
        dollars = list(re.finditer(r"\$", line))
        return [line[a.end():b.start()] for a, b in math_pairs(line, dollars, reads_as_math)]

    assert pairs("costs $5 and $10 while $x_i$ and $\\alpha$") == ["x_i", "\\alpha"]
    assert pairs("$ make install") == [] and pairs("$ echo $HOME") == []
    assert pairs("$a b$ and $the total cost$") == ["a b"]  # prose between two signs is not math


@pytest.mark.parametrize("name,content,status,code", [
    ("broken.pdf", b"%PDF-1.7\n1 0 obj <<", 422, "corrupt_file"),
    ("notes.docx", b"PK\x03\x04 a zip archive", 415, "unsupported_type"),
    ("empty.pdf", b"", 400, "empty_file"),
    ("photo.png", b"\x89PNG\r\n\x1a\n truncated", 422, "corrupt_file"),
])
def test_bad_uploads_get_a_clear_error_never_a_500(client, name, content, status, code):
    response = client.post("/v1/ocr", files={"file": (name, content)})
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code and name in error["message"]


@pytest.mark.parametrize("kind,status,code", [
    ("unsupported", 415, "unsupported_type"), ("empty", 400, "empty_file"), ("encrypted", 422, "encrypted"),
    ("corrupt", 422, "corrupt_file"), ("too_large", 422, "corrupt_file"), ("unreadable", 422, "corrupt_file"),
])
def test_a_refused_file_maps_to_its_error_by_kind_never_by_text(kind, status, code):
    from lightocr_ingest.errors import InputError
    from lightocr_ingest.service.errors import from_input_error

    error = from_input_error(InputError("/tmp/x/upload.pdf", "words that name no kind", page=2, kind=kind), "a.pdf")
    assert (error.status, error.code) == (status, code)
    assert error.message.startswith("a.pdf, page 2: ") and "/tmp" not in error.message and error.suggestion


def test_encrypted_and_oversized_and_long_files(client, tmp_path):
    locked = encrypted_pdf(tmp_path / "locked.pdf")
    response = client.post("/v1/ocr", files={"file": ("locked.pdf", locked.read_bytes())})
    assert response.status_code == 422 and error_of(response)["code"] == "encrypted"
    long = one_column_pdf(tmp_path / "long.pdf", pages=7)  # the limit is 5
    response = client.post("/v1/ocr", files={"file": ("long.pdf", long.read_bytes())})
    assert response.status_code == 413 and error_of(response)["code"] == "too_many_pages"
    assert client.post("/v1/ocr", files={"file": ("long.pdf", long.read_bytes())}, data={"pages": "1-2"}).status_code == 200
    big = b"%PDF-1.7\n" + b"0" * (2 << 20)  # over the 1 MB limit
    response = client.post("/v1/ocr", files={"file": ("big.pdf", big)})
    assert response.status_code == 413 and error_of(response)["code"] == "too_large"


def whole_answer(answer: bytes) -> bool:
    """An HTTP answer's head and as much body as its Content-Length says have arrived."""
    head, found, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return bool(found) and len(body) >= (int(length.group(1)) if length else 0)


def test_an_upload_over_the_limit_is_refused_while_it_streams(tmp_path, vllm):
    """A chunked upload with no Content-Length: the 413 comes back while the client is still sending."""
    import select
    import socket

    with running_server(create_app(service_settings(tmp_path, vllm.url, max_upload_mb=1))) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /v1/ocr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
            head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n%PDF-1.7\n'
            sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            sock.setblocking(False)
            # Up to 8 MB in 64 kB pieces (the limit is 1 MB), and never the last chunk: the body never
            # ends, so an answer can only come while the upload is still coming. Waits on the socket
            # (a generous deadline), not on a guess of how fast the server reads.
            answer, sent, give_up = b"", 0, time.monotonic() + 60
            while not whole_answer(answer):
                assert time.monotonic() < give_up, f"no answer after {sent} pieces of 64 kB"
                readable, writable, _ = select.select([sock], [sock] if sent < 128 else [], [], 1.0)
                if writable:
                    sent += 1
                    try:
                        sock.sendall(b"%x\r\n%s\r\n" % (64 << 10, b"0" * (64 << 10)))
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                        pass
                if readable:
                    piece = sock.recv(65536)
                    assert piece or answer, "the server closed the connection without an answer"
                    answer += piece
                    if not piece:
                        break
    assert answer.startswith(b"HTTP/1.1 413") and b'"too_large"' in answer


@contextlib.contextmanager
def running_server(app):
    """The app under uvicorn on a free loopback port, in a thread; yields its base URL."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_missing_file_unknown_job_bad_json_and_unknown_route(client):
    response = client.post("/v1/ocr", data={"pages": "1"})
    assert response.status_code == 422 and error_of(response)["code"] == "missing_file"
    response = client.get("/v1/jobs/nope")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    response = client.post("/v1/query", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and error_of(response)["code"] == "invalid_request"
    response = client.post("/v1/query", json={"k": 3})
    assert response.status_code == 422 and "text" in error_of(response)["message"]
    assert client.get("/v1/nothing").status_code == 404


def test_a_fault_of_the_service_is_a_500_with_a_request_id_and_the_traceback_only_in_the_log(
        client, tmp_path, monkeypatch, caplog):
    import lightocr_ingest.service.routes.ocr as ocr_routes

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ocr_routes, "_chunks", broken)
    pdf = one_column_pdf(tmp_path / "a.pdf")
    response = client.post("/v1/ocr", files={"file": ("a.pdf", pdf.read_bytes())}, data={"chunks": "true"},
                           headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal" and error["request_id"] == "req-42" and "disk on fire" not in response.text
    assert "disk on fire" in caplog.text and "req-42" in caplog.text


def test_ingest_job_runs_to_done_then_query_finds_the_page_and_uploads_are_removed(client, documents):
    pdf = documents / "report.pdf"
    response = client.post("/v1/ingest", files=[("file", ("report.pdf", pdf.read_bytes())),
                                                ("file", ("bad.pdf", b"%PDF-1.7 broken"))])
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert response.headers["Location"] == f"/v1/jobs/{job_id}"
    job = poll(client, job_id)
    assert job["status"] == "partial" and job["pages_ingested"] == 3 and job["pages_total"] == 3
    statuses = {f["file_name"]: f["status"] for f in job["files"]}
    assert statuses == {"report.pdf": "done", "bad.pdf": "failed"}
    assert any("bad.pdf" in p for p in job["problems"]) and not any("/tmp" in p for p in job["problems"])
    uploads = client.app.state.service.upload_root
    assert list(uploads.iterdir()) == []  # the job's files went when it ended
    hits = client.post("/v1/query", json={"text": "sediment survey Varna basin", "k": 2}).json()["hits"]
    assert hits[0]["file_name"] == "report.pdf" and hits[0]["regions"] and hits[0]["file_sha256"]


def test_documents_are_listed_and_one_is_deleted_by_its_hash_and_nothing_else(client, documents):
    for name, collection in (("report.pdf", None), ("report-copy.pdf", "kept")):  # one content, two collections
        job = poll(client, client.post("/v1/ingest", files=[("file", (name, (documents / "report.pdf").read_bytes()))],
                                       data={"collection": collection} if collection else None).json()["job_id"])
        assert job["status"] == "done"
    listed = client.get("/v1/documents").json()
    assert listed["collection"] == "svc" and [d["file_name"] for d in listed["documents"]] == ["report.pdf"]
    (report,) = listed["documents"]
    assert report["pages"] == 3 and report["complete"] and report["file_path"] == "report.pdf"
    assert report["sha256"] == hashlib.sha256((documents / "report.pdf").read_bytes()).hexdigest()

    assert client.delete(f"/v1/documents/{'0' * 64}").status_code == 404
    assert client.delete("/v1/documents/not-a-hash").status_code == 422
    deleted = client.delete(f"/v1/documents/{report['sha256']}").json()
    assert deleted["deleted_chunks"] == report["chunks"] and deleted["documents"][0]["file_name"] == "report.pdf"
    assert client.get("/v1/documents").json()["documents"] == []
    assert client.post("/v1/query", json={"text": "sediment survey"}).status_code == 404  # its chunks are gone
    # The other collection, holding the same content, is untouched.
    assert [d["file_name"] for d in client.get("/v1/documents", params={"collection": "kept"}).json()["documents"]] \
        == ["report-copy.pdf"]
    # While a job stores into a collection, a delete there waits (it could take the job's first
    # chunks, and the job would then mark the file complete without them).
    service = client.app.state.service
    service.runner.writing = lambda collection: collection == "kept"
    busy = client.delete(f"/v1/documents/{report['sha256']}", params={"collection": "kept"})
    assert busy.status_code == 409 and busy.headers["Retry-After"] and "after it ends" in error_of(busy)["suggestion"]
    # A service never prunes a collection to its uploads, whatever the config says.
    service.config = service.config.model_copy(update={"input": service.config.input.model_copy(update={"prune": True})})
    assert service.config_for("kept").input.prune is False


def poll(client, job_id, timeout_s=120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s")


def test_query_on_an_empty_collection_says_to_ingest_first(client):
    response = client.post("/v1/query", json={"text": "anything", "collection": "never_filled"})
    assert response.status_code == 404 and "ingest" in error_of(response)["suggestion"]


def test_api_key_guards_v1_but_not_health_metrics_or_the_page(tmp_path, vllm, caplog):
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(service_settings(tmp_path, vllm.url, api_key="s3cret-key"))) as guarded:
        response = guarded.post("/v1/query", json={"text": "x"})
        assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
        assert guarded.post("/v1/query", json={"text": "x"}, headers={"X-API-Key": "wrong"}).status_code == 401
        for headers in ({"Authorization": "Bearer s3cret-key"}, {"X-API-Key": "s3cret-key"}):
            assert guarded.post("/v1/query", json={"text": "x"}, headers=headers).status_code == 404  # empty: past auth
        assert guarded.get("/v1/documents").status_code == 401
        assert guarded.delete(f"/v1/documents/{'0' * 64}").status_code == 401
        for open_route in ("/healthz", "/metrics", "/", "/openapi.json"):
            assert guarded.get(open_route).status_code == 200, open_route
    assert "s3cret-key" not in caplog.text


def test_metrics_count_pages_requests_and_latency(client, tmp_path):
    pdf = one_column_pdf(tmp_path / "a.pdf", pages=2)
    client.post("/v1/ocr", files={"file": ("a.pdf", pdf.read_bytes())})
    text = client.get("/metrics").text
    assert 'lightocr_pages_total{engine="vllm",status="ok"} 2.0' in text
    assert 'lightocr_request_duration_seconds_count{method="POST",route="/v1/ocr",status="200"} 1.0' in text
    assert "lightocr_requests_in_flight" in text and "lightocr_ocr_queue_depth" in text
    assert "lightocr_ocr_cache_hits_total" in text


def test_health_and_readiness(client, tmp_path):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["qdrant"] == "ok" and ready.json()["ocr"].startswith("ok")
    with TestClient(create_app(service_settings(tmp_path / "down", "http://127.0.0.1:9/v1"))) as down:
        response = down.get("/readyz")
        assert response.status_code == 503 and "OCR" in error_of(response)["message"]


def test_readiness_asks_the_ocr_server_with_its_api_key(tmp_path, monkeypatch):
    """/readyz probes vLLM as the OCR client does, with ``ocr.api_key``: a server started with
    --api-key answers it (and refuses a probe without the key, which /readyz then reports)."""
    for name in ("LIGHTONOCR_API_KEY", "VLLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with FakeVLLMServer(api_key="vllm-s3cret") as guarded_vllm:
        keyed = service_settings(tmp_path / "keyed", guarded_vllm.url, ocr={"api_key": "vllm-s3cret"})
        with TestClient(create_app(keyed)) as ready:
            response = ready.get("/readyz")
            assert response.status_code == 200, response.text
            answer = response.json()
            assert {k: answer[k] for k in ("status", "ocr", "qdrant")} == \
                {"status": "ready", "ocr": f"ok ({guarded_vllm.url})", "qdrant": "ok"}
            assert answer["limits"]["concurrency"] == 4 and answer["limits"]["engine"] == "vllm"
        with TestClient(create_app(service_settings(tmp_path / "keyless", guarded_vllm.url))) as keyless:
            response = keyless.get("/readyz")
            assert response.status_code == 503, response.text
            message = error_of(response)["message"]
            assert "OCR" in message and "refused the API key" in message and "vllm-s3cret" not in response.text


def test_openapi_documents_the_routes_with_examples(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/ocr", "/v1/ingest", "/v1/jobs/{job_id}", "/v1/query", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert "How often" in io.StringIO(client.get("/openapi.json").text).read()  # the query example
    assert client.get("/docs").status_code == 200


def test_upload_names_are_never_used_as_paths(client, tmp_path):
    pdf = one_column_pdf(tmp_path / "a.pdf")
    response = client.post("/v1/ocr", files={"file": ("../../../etc/evil.pdf", pdf.read_bytes())})
    assert response.status_code == 200 and response.json()["file_name"] == "../../../etc/evil.pdf"
    assert not Path("/etc/evil.pdf").exists()


def race(client, batches: int = 120) -> list[str]:
    """One thread upserting and deleting while two query: the errors the queries met."""
    import threading

    import numpy as np
    from qdrant_client import models

    client.create_collection("c", vectors_config=models.VectorParams(size=16, distance=models.Distance.COSINE))
    client.upsert("c", [models.PointStruct(id=i, vector=np.random.rand(16).tolist(), payload={"f": "a"})
                        for i in range(10)])
    errors: list[str] = []
    done = threading.Event()

    def writer():
        for batch in range(batches):
            client.upsert("c", [models.PointStruct(id=10 + batch * 20 + i, vector=np.random.rand(16).tolist(),
                                                   payload={"f": f"f{batch}"}) for i in range(20)])
            if batch % 5 == 0:
                client.delete("c", points_selector=models.FilterSelector(filter=models.Filter(
                    must=[models.FieldCondition(key="f", match=models.MatchValue(value=f"f{batch - 1}"))])))
        done.set()

    def reader():
        while not done.is_set():
            try:
                client.query_points("c", query=np.random.rand(16).tolist(), limit=5)
                client.count("c")
            except Exception as exc:  # noqa: BLE001 - what a query during an upsert can meet
                errors.append(type(exc).__name__)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_the_embedded_store_answers_queries_while_another_thread_writes(tmp_path):
    """The service searches while its job thread stores, with no lock of ours around the store:
    every query and count during upserts and deletes by filter answers, without an error."""
    from lightocr_ingest.store import EdgeClient

    client = EdgeClient(tmp_path / "shared")
    try:
        assert race(client) == []
        deleted = len(range(5, 120, 5))  # batch 5 deletes f4's points, batch 10 f9's...
        assert client.count("c").count == 10 + 120 * 20 - deleted * 20
    finally:
        client.close()


def test_a_config_with_input_paths_serves_uploads_only(tmp_path, vllm, documents):
    config = parse_config({"input": {"paths": [str(documents)]},
                           "ocr": {"engine": "vllm", "url": vllm.url, "cache_dir": None},
                           "qdrant": {"path": str(tmp_path / "qdrant"), "collection": "svc"}})
    with TestClient(create_app(ServiceSettings(config=config))) as client:
        pdf = one_column_pdf(tmp_path / "upload.pdf", pages=1)
        job = poll(client, client.post("/v1/ingest", files={"file": ("upload.pdf", pdf.read_bytes())}).json()["job_id"])
    assert job["status"] == "done" and job["pages_total"] == 1 and job["pages_ingested"] == 1
    assert [f["file_name"] for f in job["files"]] == ["upload.pdf"]  # the config's own folder was not read


def test_ingest_refuses_a_file_over_the_page_limit_and_keeps_nothing(client, tmp_path):
    long = one_column_pdf(tmp_path / "long.pdf", pages=7)  # the limit is 5
    response = client.post("/v1/ingest", files={"file": ("long.pdf", long.read_bytes())})
    assert response.status_code == 413 and error_of(response)["code"] == "too_many_pages"
    assert list(client.app.state.service.upload_root.iterdir()) == []


def test_without_the_key_the_body_is_not_even_read(tmp_path, vllm):
    with TestClient(create_app(service_settings(tmp_path, vllm.url, api_key="k"))) as guarded:
        broken = guarded.post("/v1/ocr", content=b"--x\r\nnot multipart",
                              headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert broken.status_code == 401 and error_of(broken)["code"] == "unauthorized"


def test_callers_cannot_mint_metric_series(client):
    for n in range(5):
        client.get(f"/v1/random-{n}")
        client.request("FOO", "/healthz")
    text = client.get("/metrics").text
    assert "random-" not in text and "FOO" not in text
    assert 'route="unmatched"' in text and 'method="other"' in text


def test_names_in_a_job_are_unique_and_never_paths():
    from lightocr_ingest.service.jobs import known_names

    assert known_names(["r.pdf", "r.pdf", "r (2).pdf", "../../x/r.pdf", "C:\\docs\\a.png", ""]) == \
        ["r.pdf", "r (2).pdf", "r (2) (2).pdf", "r (3).pdf", "a.png", "upload"]


def test_request_ids_and_cors(tmp_path, vllm, client):
    ok = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert ok.headers["X-Request-ID"] != "bad id with spaces" and len(ok.headers["X-Request-ID"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "trace-7"}).headers["X-Request-ID"] == "trace-7"
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "https://a.example"}).headers
    with TestClient(create_app(service_settings(tmp_path / "cors", vllm.url, cors_origins=["https://a.example"]))) as open_:
        response = open_.get("/healthz", headers={"Origin": "https://a.example"})
        assert response.headers["access-control-allow-origin"] == "https://a.example"
        assert "X-Request-ID" in response.headers["access-control-expose-headers"]


def test_ocr_streams_a_line_per_page_as_it_is_read_then_the_files_chunks(client, documents):
    import json as json_module

    pdf = documents / "report.pdf"
    with client.stream("POST", "/v1/ocr", files={"file": ("report.pdf", pdf.read_bytes())},
                       data={"stream": "true", "chunks": "true", "html": "true"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
        events = [json_module.loads(line) for line in response.iter_lines() if line]
    assert events[0]["file"]["file_name"] == "report.pdf" and events[0]["file"]["page_count"] == 3
    assert [e["page"]["page"] for e in events[1:4]] == [1, 2, 3] and "<p>" in events[1]["page"]["html"]
    whole = client.post("/v1/ocr", files={"file": ("report.pdf", pdf.read_bytes())}, data={"chunks": "true"}).json()
    # The same chunks as the plain answer: cut over the whole file, as the collection cuts them.
    assert events[4]["chunks"] == whole["chunks"] and len(events) == 5
    assert [p["markdown"] for p in whole["pages"]] == [e["page"]["markdown"] for e in events[1:4]]


def test_a_streamed_upload_is_refused_before_the_first_line(client):
    response = client.post("/v1/ocr", files={"file": ("broken.pdf", b"%PDF-1.7\n1 0 obj <<")}, data={"stream": "true"})
    assert response.status_code == 422 and error_of(response)["code"] == "corrupt_file"
    assert list(client.app.state.service.upload_root.iterdir()) == []


_WORDS = ["cost", "x", "y2", "alpha", "make", "install", "HOME", "10", "5", "a b", "$x$", "$5", "`$HOME`"]
_PIECES = ["$", " ", "^", "_", "+", "=", "|", "*", "`"]
_LINE_STARTS = ["", "", "$ ", "> ", "# ", "    "]
_lines = st.tuples(st.sampled_from(_LINE_STARTS), st.lists(st.sampled_from(_WORDS + _PIECES), max_size=8))
_pages = st.lists(st.tuples(_lines, st.sampled_from(["\n", "\n", "\n\n"])), min_size=1, max_size=8)


@hypothesis_settings(max_examples=300, deadline=None)
@given(_pages)
def test_page_html_loses_no_letter_or_digit_of_the_markdown(lines):
    """Shell sessions, math pairs and quotations only change how text is shown: every letter
    and digit of the page reaches the web page, in order."""
    import html as html_module
    import re

    from hypothesis import event

    from lightocr_ingest.service.page_html import page_html

    markdown = "".join(start + " ".join(words) + end for (start, words), end in lines)
    rendered = page_html(markdown)
    event("shell session" if "<pre><code>$ " in rendered else "no shell session")
    event("inline math" if "<math" in rendered else "no math")
    text = html_module.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert re.sub(r"[^A-Za-z0-9]", "", text) == re.sub(r"[^A-Za-z0-9]", "", markdown)
