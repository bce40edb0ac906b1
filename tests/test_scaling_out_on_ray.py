"""``--runner ray`` on a local Ray instance against the test vLLM server: the local runner's points, exactly."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from lightocr_ingest.cli import main
from lightocr_ingest.pipeline import Ingestor, parse_config
from lightocr_ingest.cli.options import apply_flags as _apply_flags
from lightocr_ingest.testing import FAULT_KINDS, FakeVLLMServer, FaultPlan

from .conftest import pipeline_config
from .documents import one_column_pdf, two_column_pdf

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'lightocr-ingest[ray]' to test --runner ray")
pytest.importorskip("ray.data", reason="ray[data] is not installed: pip install 'lightocr-ingest[ray]'")

from lightocr_ingest.pipeline.ray_runner import RayIngestor  # noqa: E402
from lightocr_ingest.pipeline.ray_runner import dataset  # noqa: E402
from lightocr_ingest.pipeline.ray_runner.workers import RENDER_PAGES_PER_ROW, FileToRead, render_files  # noqa: E402


LONG_PAGES = RENDER_PAGES_PER_ROW * 2 + 3  # a file that reaches the OCR actor in three rows
PAGES = 3 + 1 + 2 + LONG_PAGES  # in the files fixture

# What differs from run to run.
TIMING_KEYS = {"ocr_latency_s", "locate_s", "latency_s", "elapsed_s", "pages_per_s", "cpu_ms_per_page", "stored_at"}


@pytest.fixture(scope="module")
def local_ray():
    """One Ray instance for the module (starting one takes seconds); the runner uses it and leaves it running."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-pdfs")
    one_column_pdf(folder / "report.pdf", pages=3)
    two_column_pdf(folder / "columns.pdf")
    one_column_pdf(folder / "notes.pdf", pages=2, title="Field Notes on Soil Erosion")
    # Rendered in rows of RENDER_PAGES_PER_ROW pages that reach the OCR actor in separate calls: the file's
    # chunks must still be cut from all its pages in order.
    one_column_pdf(folder / "long.pdf", pages=LONG_PAGES, title="Annual Sediment Survey")
    return folder


def config(tmp_path, url, name, **ocr):
    """A run's config against the test server: a timeout far above its answers (milliseconds),
    so a loaded machine never makes a request time out and the page be asked again."""
    return pipeline_config(tmp_path / name / "qdrant", "test", url=url, chunk_size=64,
                           ocr={"cache_dir": str(tmp_path / name / "cache"), "backoff_base_s": 0.01,
                                "request_timeout_s": 30.0, **ocr})


def rendered(files: list[FileToRead], cfg) -> list:
    """The rows a render task makes of ``files``, rendered at 1,540 px."""
    return list(render_files(files, cfg, 1540))


def test_a_render_worker_imports_only_what_rendering_needs(tmp_path):
    """Render tasks run in every worker process of a cluster: the function the dataset maps for
    rendering, imported from its module and run on a task's files, must not pull in LlamaIndex,
    Qdrant, the OpenAI client or torch (about 2 core-seconds a process). It loads the run's
    config the normal way (``pipeline.config``, which imports nothing heavy)."""
    pdf = one_column_pdf(tmp_path / "a.pdf", pages=2)
    group = dataset.task_groups([FileToRead(str(pdf), str(pdf), "", {}, 2)])[0]
    assert dataset.render_group.__module__ == "lightocr_ingest.pipeline.ray_runner.workers"  # what the dataset maps
    code = ("import pickle, sys\n"
            "from lightocr_ingest.pipeline.ray_runner.workers import render_group\n"
            "from lightocr_ingest.pipeline.config import parse_config\n"
            f"rows = list(render_group({{'files': [{pickle.dumps(group)!r}]}}, parse_config({{}}), 1540))\n"
            "from lightocr_ingest.records import PageImage\n"
            "print(sum(isinstance(page, PageImage) for row in rows for page in pickle.loads(row['items'][0])), "
            "sorted({m.split('.')[0] for m in sys.modules} & {'llama_index', 'qdrant_client', 'openai', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2 []"  # both pages rendered, nothing heavy imported


def points(ingestor) -> dict:
    """id -> payload (text and metadata) without timings."""
    found, _ = ingestor.client.scroll(ingestor.collection, limit=10_000, with_payload=True)
    return {p.id: _without_timings(p.payload) for p in found}


def assert_same_points(ours: dict, theirs: dict) -> None:
    """``ours == theirs`` (id -> payload), failing with what a reader needs to tell why: each
    point on one side only (file, page, chunk, text) and each differing key, not two dumps."""
    if ours == theirs:
        return

    def told(payload: dict) -> str:
        text = json.loads(payload.get("_node_content", "{}")).get("text", "")
        return (f"{payload.get('file_name')} p{payload.get('page')} #{payload.get('chunk_index')} "
                f"{payload.get('ocr_engine')}/{payload.get('ocr_status')}: {text[:60]!r}")

    lines = [f"only ours: {told(ours[i])}" for i in sorted(ours.keys() - theirs.keys(), key=lambda i: told(ours[i]))]
    lines += [f"only theirs: {told(theirs[i])}"
              for i in sorted(theirs.keys() - ours.keys(), key=lambda i: told(theirs[i]))]
    for i in sorted(ours.keys() & theirs.keys()):
        keys = sorted(k for k in ours[i].keys() | theirs[i].keys() if ours[i].get(k) != theirs[i].get(k))
        if keys:
            lines.append(f"differ in {keys}: {told(ours[i])}")
    raise AssertionError(f"{len(ours)} points against {len(theirs)}:\n" + "\n".join(lines[:60]))


def vectors(ingestor) -> dict:
    found, _ = ingestor.client.scroll(ingestor.collection, limit=10_000, with_vectors=True)
    return {p.id: _dense(p.vector) for p in found}


def assert_same_vectors(ours: dict, theirs: dict) -> None:
    """Embedded in other batches (other padding; bfloat16 where the CPU has AMX): not bit for bit, but within
    cosine 0.9999, what the embedding precision itself allows."""
    assert ours.keys() == theirs.keys()
    for key, vector in ours.items():
        other = theirs[key]
        norms = (sum(a * a for a in vector) * sum(b * b for b in other)) ** 0.5
        cosine = sum(a * b for a, b in zip(vector, other)) / norms
        assert cosine > 0.9999, key


def _dense(vector):
    from lightocr_ingest.store import DENSE_VECTOR

    return vector if isinstance(vector, list) else vector[DENSE_VECTOR]


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def summary(report) -> list:
    """The report apart from timings: every file and page, in order."""
    return [(f.path, f.status, f.sha256, f.chunks, f.chunks_already_stored, f.error, f.duplicate_of, f.regions,
             [(p.page, p.status, p.engine, p.attempts, p.cached, p.chunks, p.error, p.warning) for p in f.pages])
            for f in report.files]


def totals(report) -> dict:
    return {k: v for k, v in report.totals().items() if k not in TIMING_KEYS}


def run_local(tmp_path, url, paths, **ocr):
    ingestor = Ingestor(config(tmp_path, url, "local", **ocr))
    try:
        report = ingestor.run(paths)
        return report, points(ingestor), vectors(ingestor)
    finally:
        ingestor.close()


@pytest.mark.slow  # a local Ray cluster
def test_ray_runner_stores_the_local_runners_points_and_a_rerun_does_nothing(local_ray, files, tmp_path):
    paths = [str(files)]
    with FakeVLLMServer() as server:
        local_report, local_points, local_vectors = run_local(tmp_path, server.url, paths)
        sent_by_local = len(server.requests)
        ingestor = RayIngestor(config(tmp_path, server.url, "ray"))
        context = ray.data.DataContext.get_current()
        settings_before = (context.wait_for_min_actors_s, context.target_max_block_size, context.enable_progress_bars)
        try:
            report = ingestor.run(paths)
            # the run's Ray Data settings are given back to the process after it
            assert (context.wait_for_min_actors_s, context.target_max_block_size,
                    context.enable_progress_bars) == settings_before
            assert len(server.requests) - sent_by_local == sent_by_local == PAGES  # every page once
            # the same pages, pixel for pixel (the text the server answers is made from the PNG's hash)
            assert sorted(r.image_sha256 for r in server.requests[sent_by_local:]) == \
                sorted(r.image_sha256 for r in server.requests[:sent_by_local])
            assert_same_points(points(ingestor), local_points)
            assert_same_vectors(vectors(ingestor), local_vectors)
            assert summary(report) == summary(local_report) and totals(report) == totals(local_report)
            assert report.ok and report.totals()["chunks"] == len(local_points) > 0
            # The report counts the workers' CPU (rendering, requests, chunking are theirs), not the driver's alone.
            worked = {stage for stage, ns in report.cpu_ns.items() if ns > 0}
            assert {"open", "render", "encode", "requests", "chunking", "upsert", "process"} <= worked
            assert report.cpu_ns["process"] > sum(ns for stage, ns in report.cpu_ns.items() if stage != "process")

            sent = len(server.requests)
            again = ingestor.run(paths)
            assert len(server.requests) == sent
            assert again.totals()["files_skipped"] == 4 and again.points_after == again.points_before
            assert_same_points(points(ingestor), local_points)
        finally:
            ingestor.close()
    assert server.violations == []


@pytest.mark.slow  # a local Ray cluster
def test_a_corrupt_file_fails_and_the_rest_is_stored(local_ray, files, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<>> garbage")
    (folder / "report.pdf").write_bytes((files / "report.pdf").read_bytes())
    (folder / "copy.pdf").write_bytes((files / "report.pdf").read_bytes())  # a duplicate: skipped
    with FakeVLLMServer() as server:
        local_report, local_points, _ = run_local(tmp_path, server.url, [str(folder)])
        ingestor = RayIngestor(config(tmp_path, server.url, "ray"))
        try:
            report = ingestor.run([str(folder)])
            assert_same_points(points(ingestor), local_points)
        finally:
            ingestor.close()
    assert summary(report) == summary(local_report)
    statuses = {f.path.rsplit("/", 1)[-1]: f.status for f in report.files}
    assert statuses == {"broken.pdf": "failed", "copy.pdf": "ok", "report.pdf": "skipped"}
    assert not report.ok and report.totals()["pages_ingested"] == 3


@pytest.mark.slow  # a local Ray cluster
def test_an_embedding_model_that_cannot_load_fails_the_run_with_its_error(local_ray, files, tmp_path):
    """The model loads in the embedding actor's background; its error must still stop the run."""
    with FakeVLLMServer() as server:
        cfg = config(tmp_path, server.url, "no-model").model_copy(deep=True)
        cfg.embedding.model = str(tmp_path / "no-such-model")
        ingestor = RayIngestor(cfg)
        try:
            with pytest.raises(Exception, match="no-such-model"):
                ingestor.run([str(files / "report.pdf")])
        finally:
            ingestor.close()


@pytest.mark.slow  # a local Ray cluster
def test_faults_injected_give_the_same_points(local_ray, files, tmp_path):
    paths = [str(files / "report.pdf"), str(files / "columns.pdf")]
    with FakeVLLMServer() as clean:
        _, local_points, _ = run_local(tmp_path, clean.url, paths)
    plan = FaultPlan(rate=0.6, kinds=FAULT_KINDS, max_in_a_row=2, stall_s=1.0)
    with FakeVLLMServer(faults=plan) as server:
        ingestor = RayIngestor(config(tmp_path, server.url, "ray", request_timeout_s=0.5))  # a stall times out
        try:
            report = ingestor.run(paths)
            assert_same_points(points(ingestor), local_points)
        finally:
            ingestor.close()
    assert sum(server.faults_injected.values()) > 0 and report.ok
    assert report.totals()["pages_by_status"]["retried"] > 0


def test_runner_and_address_from_flags_and_yaml(tmp_path):
    data = parse_config({"runner": "ray", "ray_address": "auto"})
    assert (data.runner, data.ray_address) == ("ray", "auto")
    assert parse_config({}).runner == "local"
    with pytest.raises(Exception, match="runner"):
        parse_config({"runner": "spark"})

    class Args:
        runner, ray_address = "ray", "ray://head:10001"

    flagged = _apply_flags(parse_config({}), Args())
    assert (flagged.runner, flagged.ray_address) == ("ray", "ray://head:10001")


@pytest.mark.slow  # a local Ray cluster
def test_cli_ingest_with_runner_ray(local_ray, files, tmp_path, capsys):
    with FakeVLLMServer() as server:
        code = main(["ingest", str(files / "columns.pdf"), "--runner", "ray", "--ocr-engine", "vllm",
                     "--ocr-url", server.url, "--qdrant-path", str(tmp_path / "q"), "--collection", "cli"])
        assert code == 0 and len(server.requests) == 1


@pytest.mark.slow  # a local Ray cluster
def test_a_half_stored_file_resumes_to_the_same_points_without_ocr(local_ray, files, tmp_path):
    from lightocr_ingest.store import COMPLETE_KEY

    with FakeVLLMServer() as server:
        ingestor = RayIngestor(config(tmp_path, server.url, "ray"))
        try:
            first = ingestor.run([str(files / "report.pdf")])
            whole = points(ingestor)
            ids = sorted(whole, key=lambda i: (whole[i]["page"], i))
            # As if killed mid-way: the last chunks never stored, the completion mark never set.
            ingestor.client.delete_payload(ingestor.collection, keys=[COMPLETE_KEY], points=ids)
            ingestor.client.delete(ingestor.collection, points_selector=ids[len(ids) // 2:])
            requests = len(server.requests)
            resumed = ingestor.run([str(files / "report.pdf")])
            assert_same_points(points(ingestor), whole)
            assert len(server.requests) == requests  # pages from the OCR cache
        finally:
            ingestor.close()
    (file,) = resumed.files
    assert file.status == "ok" and file.chunks == first.files[0].chunks
    assert file.chunks_already_stored == len(ids) // 2 > 0 and all(p.cached for p in file.pages)


@pytest.mark.slow  # a local Ray cluster
def test_a_files_pages_read_in_several_calls_come_back_once_as_the_whole_file_in_page_order(files, tmp_path):
    """The OCR actor without Ray: rows of rendered pages, the long file's three out of order and in
    concurrent calls, as Ray Data may deliver them. Each file comes out once, whole, pages in order,
    from the call that completed it; a file that could no longer be opened comes out with its error."""
    import concurrent.futures
    import pickle

    import pandas as pd

    from lightocr_ingest.pipeline.ray_runner.ocr_actor import OcrPages

    with FakeVLLMServer() as server:
        cfg = config(tmp_path, server.url, "unit")
        to_read = [FileToRead(str(files / "long.pdf"), "long.pdf", "", {}, LONG_PAGES),
                   FileToRead(str(files / "report.pdf"), "report.pdf", "", {}, 3),
                   FileToRead(str(tmp_path / "gone.pdf"), "gone.pdf", "", {}, 1)]
        rows = rendered(to_read, cfg)
        assert [(r["known_as"][0], r["first"][0], r["total"][0]) for r in rows] == [
            ("long.pdf", 0, -1), ("long.pdf", 8, -1), ("long.pdf", 16, LONG_PAGES), ("report.pdf", 0, 3),
            ("gone.pdf", 0, 0)]
        assert "gone.pdf" in rows[-1]["error"][0] and "/" not in rows[-1]["error"][0].split(":")[0]
        actor = OcrPages(cfg)
        try:  # one after the other, the last row before the middle one: the file is not handed on short
            assert len(actor(rows[0])) == 0 and len(actor(rows[2])) == 0
            whole = actor(rows[1])
        finally:
            actor.close()
        assert list(whole["known_as"]) == ["long.pdf"]
        assert [d.metadata["page"] for d in pickle.loads(whole["pages"].iloc[0])] == list(range(1, LONG_PAGES + 1))
        actor = OcrPages(cfg)
        order = [rows[2], rows[4], rows[0], rows[3], rows[1]]  # the long file's last row first
        try:
            with concurrent.futures.ThreadPoolExecutor(len(order)) as pool:
                outputs = list(pool.map(actor, order))
        finally:
            actor.close()
    handed_on = pd.concat(outputs)
    assert sorted(handed_on["known_as"]) == ["gone.pdf", "long.pdf", "report.pdf"]  # each file once
    by_file = {name: pickle.loads(pages) for name, pages in zip(handed_on["known_as"], handed_on["pages"])}
    assert [d.metadata["page"] for d in by_file["long.pdf"]] == list(range(1, LONG_PAGES + 1))
    assert [d.metadata["page"] for d in by_file["report.pdf"]] == [1, 2, 3]
    assert by_file["gone.pdf"] == [] and handed_on.set_index("known_as")["error"]["gone.pdf"] == "gone.pdf: file not found"
    assert len(server.requests) == LONG_PAGES + 3  # each page once (the second pass has the long file cached)


@pytest.mark.slow  # a local Ray cluster
def test_a_draining_stream_and_the_next_one_hand_each_page_to_its_own_file(files, tmp_path):
    """The OCR actor's stream stops taking pages after OCR_IDLE_S without any, and drains while
    the next call starts another: pages of the new stream answered first must still go to their
    own file (a single queue of owners for both streams gave them to the draining file)."""
    import concurrent.futures
    import pickle
    import threading
    import time

    import pandas as pd

    from lightocr_ingest.pipeline.ray_runner.ocr_actor import OcrPages

    # The first stream's pages are held in flight (answered only when the test says), so the second
    # stream's answers come back first whatever the machine's speed: events, not latencies racing.
    with FakeVLLMServer() as server:
        second_stream_started = threading.Event()
        server.hold = lambda request: not second_stream_started.is_set()
        cfg = config(tmp_path, server.url, "drain", request_timeout_s=120.0)
        long_rows = pd.concat(rendered([FileToRead(str(files / "long.pdf"), "long.pdf", "", {}, LONG_PAGES)], cfg))
        report_rows = pd.concat(rendered([FileToRead(str(files / "report.pdf"), "report.pdf", "", {}, 3)], cfg))
        actor = OcrPages(cfg)
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                slow = pool.submit(actor, long_rows)  # every page held by the server
                give_up = time.monotonic() + 120
                while len(server.requests) < LONG_PAGES:
                    assert time.monotonic() < give_up and not slow.done(), "the first stream never sent its pages"
                    time.sleep(0.01)
                while actor._accepting:  # no page for OCR_IDLE_S: its stream stops taking pages, and drains
                    assert time.monotonic() < give_up, "the first stream never stopped taking pages"
                    time.sleep(0.01)
                second_stream_started.set()
                fast = pool.submit(actor, report_rows)  # a new stream, answered at once
                fast_output = fast.result(timeout=120)
                assert not slow.done()  # the new stream's pages came back while the first one's were held
                server.released.set()
                outputs = {"slow": slow.result(timeout=120), "fast": fast_output}
        finally:
            server.released.set()
            actor.close()
    for name, output in outputs.items():
        assert len(output) == 1, name
        documents = pickle.loads(output["pages"].iloc[0])
        assert {d.metadata["file_path"] for d in documents} == {output["known_as"].iloc[0]}
    assert [d.metadata["page"] for d in pickle.loads(outputs["slow"]["pages"].iloc[0])] == list(range(1, LONG_PAGES + 1))


_TWO_NODES = r"""
import json, sys
import ray, ray.cluster_utils
from lightocr_ingest.pipeline.ray_runner import RayIngestor
from tests.test_scaling_out_on_ray import config, points, summary
from pathlib import Path

tmp, url, folder, out = sys.argv[1:5]
cluster = ray.cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
try:
    ingestor = RayIngestor(config(Path(tmp), url, "two-nodes"), address=cluster.address)
    try:
        report = ingestor.run([folder])
        Path(out).write_text(json.dumps({"points": points(ingestor), "summary": summary(report), "ok": report.ok}))
    finally:
        ingestor.close()
finally:
    cluster.shutdown()
"""


@pytest.mark.slow  # a local Ray cluster
def test_the_ray_runner_joins_a_two_node_cluster_by_address(files, tmp_path):
    """``--ray-address``: a cluster of two nodes (two raylets on this machine, one CPU each), joined
    by its address from a process of its own. The stages ask for 2 CPUs in all, more than one
    node has, so the work runs on both; the points are the local runner's."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("report.pdf", "columns.pdf"):
        (folder / name).write_bytes((files / name).read_bytes())
    with FakeVLLMServer() as server:
        local_report, local_points, _ = run_local(tmp_path, server.url, [str(folder)])
        out = tmp_path / "two-nodes.json"
        root = Path(__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run([sys.executable, "-c", _TWO_NODES, str(tmp_path), server.url, str(folder), str(out)],
                              cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        sent = len(server.requests)
    result = json.loads(out.read_text())
    assert result["ok"] and sent == 2 * 4  # each page once by each runner
    assert_same_points(result["points"], json.loads(json.dumps(local_points)))
    assert result["summary"] == json.loads(json.dumps(summary(local_report)))


def test_the_ocr_actor_takes_calls_for_every_url_of_a_comma_separated_list():
    """Its concurrent calls cover twice the window of every server, however the URLs are given."""
    ocr_calls = dataset.ocr_calls
    one = ocr_calls(parse_config({"ocr": {"url": "http://a:8000/v1", "max_in_flight": 64}}))
    two = ocr_calls(parse_config({"ocr": {"url": "http://a:8000/v1,http://b:8000/v1", "max_in_flight": 64}}))
    listed = ocr_calls(parse_config({"ocr": {"url": ["http://a:8000/v1", "http://b:8000/v1"], "max_in_flight": 64}}))
    assert two == listed == 2 * one >= 2 * 2 * 64


def test_render_tasks_take_whole_files_of_about_sixteen_pages_in_order():
    """Single-page scans go sixteen to a task, a long PDF is a task of its own, and every file
    is in exactly one task, in the planned order (tasks that start take ~ms: few, busy ones)."""
    from lightocr_ingest.pipeline.ray_runner.dataset import RENDER_PAGES_PER_TASK, pages_per_task, task_groups

    def file(name, pages, already=None):
        return FileToRead(f"/data/{name}", name, "", already or {}, pages)

    to_read = [file(f"scan-{i}.png", 1) for i in range(20)] + [file("report.pdf", 60), file("memo.pdf", 3),
                                                                file("letter.pdf", 2)]
    groups = task_groups(to_read)
    assert [len(group) for group in groups] == [RENDER_PAGES_PER_TASK, 4, 1, 2]
    # A cluster with more render slots than that gives tasks gets smaller ones, down to a page.
    assert pages_per_task(85, slots=4) == RENDER_PAGES_PER_TASK and pages_per_task(1000, slots=128) == 8
    assert pages_per_task(3, slots=4) == 1 and [len(g) for g in task_groups(to_read[:3], 1)] == [1, 1, 1]
    assert [f.known_as for group in groups for f in group] == [f.known_as for f in to_read]
    resumed = task_groups([file("half.pdf", 4, already={"id-1": {1}, "id-2": {2, 3}})])
    assert resumed[0][0].already == {"id-1": {1}, "id-2": {2, 3}}  # what a resumed file keeps, as planned
    assert task_groups([]) == []


def test_the_chunking_and_embedding_actors_load_in_the_background_and_their_first_call_fails_if_loading_did(tmp_path):
    """The actors are ready before their models load (the loading overlaps the first pages), and
    a model that cannot load fails the first call with its own error instead of being lost."""
    import pickle

    import pandas as pd

    from lightocr_ingest.pipeline.ray_runner.workers import ChunkFiles, EmbedChunks

    missing = str(tmp_path / "no-such-model")
    cfg = parse_config({"embedding": {"model": missing}, "chunking": {"tokenizer": "embedding"}})
    chunker = ChunkFiles(cfg)  # no error yet
    with pytest.raises(Exception, match="no-such-model"):
        chunker(pd.DataFrame({"pages": [pickle.dumps([])]}))
    embedder = EmbedChunks(cfg)  # (one at a time: in Ray each is its own process)
    with pytest.raises(Exception, match="no-such-model"):
        embedder(pd.DataFrame({"nodes": [pickle.dumps([])], "already": [pickle.dumps({})]}))
    # and with the models there, both work
    good = parse_config({})
    chunked = ChunkFiles(good)(pd.DataFrame({"pages": [pickle.dumps([])]}))
    assert pickle.loads(chunked["nodes"].iloc[0]) == []
    embedded = EmbedChunks(good)(pd.DataFrame({"nodes": [pickle.dumps([])], "already": [pickle.dumps({})]}))
    assert pickle.loads(embedded["nodes"].iloc[0]) == []


@pytest.mark.slow  # a local Ray cluster
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_models_load_at_the_lowest_priority_and_embedding_runs_at_the_normal_one():
    """The loading thread runs under SCHED_IDLE at nice 19 (it takes only idle CPU, even beside
    Ray's workers at nice 15), and none of that leaks into the threads that chunk and embed
    afterwards (torch's worker threads, the tokenizer's). In a fresh process: the embedding
    model is cached per process, and loaded earlier by another test it would not load here."""
    import os
    import threading

    from lightocr_ingest.pipeline.ray_runner import workers as ray_workers

    own = os.getpriority(os.PRIO_PROCESS, 0)  # this test process's niceness: 10 under `nice -n 10`
    nice, policy = ray_workers._Loading(lambda: (os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
                                                 os.sched_getscheduler(threading.get_native_id()))).result()
    # Relative to the process: the loader is never above it, and sits at the bottom (nice 19 is the
    # lowest priority whatever the process started at, and SCHED_IDLE below every nice value).
    assert policy == os.SCHED_IDLE
    assert nice >= own and nice == ray_workers.LOADING_NICE == 19

    code = """
import os, pickle
import pandas as pd
from llama_index.core.schema import TextNode
from lightocr_ingest.pipeline import parse_config
from lightocr_ingest.pipeline.ray_runner import workers as ray_workers

def threads():  # thread id -> ((nice, scheduling policy), CPU ticks)
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rpartition(")")[2].split()
        except FileNotFoundError:  # ended meanwhile
            continue
        out[tid] = ((int(fields[16]), int(fields[38])), int(fields[11]) + int(fields[12]))
    return out

config = parse_config({})
chunker = ray_workers.ChunkFiles(config)
parser = chunker._parser.result()  # one after the other: two imports of transformers at once can fail
embedder = ray_workers.EmbedChunks(config)
embedder._model.result()
before = threads()
nodes = [TextNode(text="The quarterly report shows revenue growth. " * 40, id_=str(i)) for i in range(96)]
embedder(pd.DataFrame({"nodes": [pickle.dumps(nodes)], "already": [pickle.dumps({})]}))
for _ in range(200):
    parser.count_tokens("Sediment survey of the river basin, station by station. " * 20)
after = threads()
worked = sorted({policy for tid, (policy, ticks) in after.items() if ticks > before.get(tid, (0, 0))[1]})
print(worked)
"""
    worked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    normal = os.getpriority(os.PRIO_PROCESS, 0)  # the child starts at this test process's own niceness
    # every thread that chunked or embedded ran at the process's own priority, not the loader's
    assert worked == f"[({normal}, {os.SCHED_OTHER})]", worked


def test_actors_the_cluster_cannot_start_give_an_error_that_names_them():
    from lightocr_ingest.errors import ConfigError
    from lightocr_ingest.pipeline.ray_runner.driver import _next_row

    def rows():
        raise ray.exceptions.GetTimeoutError("Timed out while starting actors. This may mean that the cluster "
                                             "does not have enough resources for the requested actor pool.")
        yield

    with pytest.raises(ConfigError, match=r"embedding: 1 x 1 GPU.*embedding.device: cpu"):
        _next_row(rows(), "OCR: 1 x 0.2 CPU; chunking: 1 x 0.25 CPU; embedding: 1 x 1 GPU")


def test_render_tasks_render_with_the_configs_page_settings(tmp_path):
    """A render task takes the run's config itself: its page selection, regions off (no text-layer
    words kept) and the driver's page size."""
    pdf = one_column_pdf(tmp_path / "a.pdf", pages=4)
    cfg = parse_config({"input": {"pages": "2-3"}, "chunking": {"regions": "off"}, "ocr": {"detect_rotation": False}})
    rows = list(render_files([FileToRead(str(pdf), "a.pdf", "", {}, 2)], cfg, 800))
    pages = [page for row in rows for page in pickle.loads(row["items"][0])]
    assert [page.page for page in pages] == [2, 3]
    assert all(page.text_words is None and max(page.image_width, page.image_height) == 800 for page in pages)
    assert {page.source.path for page in pages} == {"a.pdf"}  # known by the planned name
