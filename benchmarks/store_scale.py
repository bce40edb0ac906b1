"""The embedded store at scale: one collection grown 10k -> 100k -> 1M chunks.

Each step adds points through the store every path uses (``store.make_vector_store``: LlamaIndex
nodes with chunk-sized payloads, a 384-d dense vector and a BM25 vector: a hybrid collection),
then builds the indexes (``store.finish_writes``, as an ingest does at its end), then, in a fresh
process, reopens the folder and asks it questions. Reported per size:

- store-side insert: points a second inside the store's ``upsert`` calls (the payloads and the
  BM25 vectors made before are the pipeline's work, not the store's), and the index build after;
- reopen: opening the folder and the collection's first answer, in a new process;
- dense and hybrid query latency, p50 and p90 over ``QUERIES`` questions, after reopening;
- recall@10 of the dense search against exact search (``SearchParams(exact=True)``);
- peak RSS of the writing process, and of the reopening process after its questions (the exact
  searches for the recall figure read every vector, and come after: their peak is shown apart);
- with ``--reader-memory-mb N``, the same questions once more in a process held to N MB by a
  memory cgroup that counts the page cache too (as a container's memory limit does): the mapped
  files an unbounded reader keeps resident are page cache the kernel may take back, and this
  shows what the questions cost when it must (Linux, root or a delegated cgroup; else skipped).

The vectors are clustered like a corpus's embeddings (topics: a centre each, chunks spread
around it), not uniform noise, and unit length; a payload carries ~1 kB of text, the file and
page metadata, the heading path and regions, and LlamaIndex's ``_node_content`` copy.

qdrant-client's local mode (the store before 0.2.0) is run beside it up to 100,000 chunks
(``--local-sizes``): it holds every chunk in memory. Run from the repository root::

    .venv/bin/python benchmarks/store_scale.py --json .bench/store_scale.json          # 20-50 minutes
    .venv/bin/python benchmarks/store_scale.py --sizes 10000 100000 --no-local         # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
TOPICS = 2000  # clusters of the vectors and of the words
QUERIES = 200
QUERY_GAP_S = 0.05  # 20 questions a second while the insert runs
DURING_POINTS = 20_480  # added while queries run (``during``), after the step of CONCURRENT_AT points
CONCURRENT_AT = 100_000
BATCH = 1024  # nodes made and added at a time
WORDS = [f"w{i}" for i in range(20000)]


def make_nodes(start: int, count: int, seed: int):
    """``count`` chunk nodes numbered from ``start``, with embeddings and realistic payloads."""
    from llama_index.core.schema import TextNode

    rng = np.random.default_rng(seed + start)
    centres = np.random.default_rng(7).standard_normal((TOPICS, DIM)).astype(np.float32)
    topics = rng.integers(0, TOPICS, count)
    vectors = centres[topics] + 0.6 * rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    nodes = []
    for i in range(count):
        number = start + i
        topic = int(topics[i])
        words = [WORDS[(topic * 10 + int(w)) % len(WORDS)] for w in rng.integers(0, 60, 150)]
        file = number // 40
        metadata = {"file_name": f"report-{file:07d}.pdf", "file_path": f"/data/reports/{file % 997}/report-{file:07d}.pdf",
                    "file_sha256": f"{file:064x}", "pipeline_fingerprint": "f" * 16, "page": number % 40 + 1,
                    "pages": [number % 40 + 1], "header_path": f"Report {file} > Section {topic % 12}",
                    "regions": [{"page": number % 40 + 1, "bbox": [72.0, 100.0 + i % 500, 540.0, 180.0 + i % 500]}],
                    "bbox_source": "text_layer", "ocr_engine": "vllm", "chunk_index": number % 40}
        nodes.append(TextNode(id_=str(__import__("uuid").UUID(int=number + 1)), text=" ".join(words),
                              metadata=metadata, embedding=vectors[i].tolist()))
    return nodes


def peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM): anonymous memory and the file pages it mapped
    (the shard's on-disk vectors and payloads read through the page cache count too)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def anonymous_mb() -> float:
    """Memory of the process's own (RssAnon): what the kernel cannot drop and read again."""
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def grow(args) -> int:
    """Child process: add points ``args.start`` .. ``args.size`` to the folder, build the
    indexes, and print the step's figures as a JSON line."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lightocr_ingest.store import finish_writes, make_vector_store

    client = open_store(args)
    store = make_vector_store(client, "scale", "hybrid")
    if args.store == "local":
        store.add(make_nodes(args.start, 1, args.seed))  # the collection exists from here
        wal_mode(client)
    spent = {"writes": 0.0, "optimising": 0.0}

    def timed(call, account):
        def timed_call(*a, **k):
            started = time.perf_counter()
            try:
                return call(*a, **k)
            finally:
                spent[account] += time.perf_counter() - started
        return timed_call

    # The store's share of adding: its write calls (EdgeVectorStore upserts; LlamaIndex's
    # QdrantVectorStore, on local mode, uploads). The embedded store optimises every 50,000
    # points from inside an upsert: that time is counted apart (and taken out of the writes).
    client.upsert, client.upload_points = timed(client.upsert, "writes"), \
        timed(getattr(client, "upload_points", None), "writes")
    if hasattr(client, "optimize"):
        client.optimize = timed(client.optimize, "optimising")
    done, wall = args.start, time.perf_counter()
    while done < args.size:
        count = min(BATCH, args.size - done)
        store.add(make_nodes(done, count, args.seed))
        done += count
    added_s = time.perf_counter() - wall
    during_writes = spent["optimising"]
    started = time.perf_counter()
    if args.store == "edge":
        finish_writes(client, "scale")
    index_s = time.perf_counter() - started
    client.close()
    writes = spent["writes"] - during_writes
    print(json.dumps({"size": args.size, "store_insert_pts_s": round((args.size - args.start) / writes),
                      "optimising_while_writing_s": round(during_writes, 1),
                      "add_wall_s": round(added_s, 1), "index_build_s": round(index_s, 1),
                      "writer_peak_rss_mb": round(peak_rss_mb()), "writer_end_anon_mb": round(anonymous_mb())}),
          flush=True)
    return 0


def wal_mode(client) -> None:
    """Local mode's SQLite file in write-ahead mode with synchronous=NORMAL, as lightocr-ingest
    0.1 set it (``store.tune_local_storage``, removed in 0.2.0): 8x faster inserts than as
    qdrant-client ships it. Private attributes: a benchmark's business only."""
    connection = client._client.collections["scale"].storage.storage
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")


def open_store(args):
    if args.store == "edge":
        from lightocr_ingest.store import make_client

        return make_client(args.folder)
    from qdrant_client import QdrantClient

    return QdrantClient(path=args.folder)


def ask(args) -> int:
    """Child process: reopen the folder, time the first answer, then dense and hybrid queries."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
    from qdrant_client import models

    from llama_index.vector_stores.qdrant import QdrantVectorStore  # noqa: F401  (imports are not the reopen)

    from lightocr_ingest.store import make_vector_store
    from lightocr_ingest.store.edge_vector_store import EdgeVectorStore  # noqa: F401

    started = time.perf_counter()
    client = open_store(args)

    store = make_vector_store(client, "scale", "hybrid")
    probes = make_nodes(0, QUERIES, args.seed + 99)  # new chunks of the same topics: the questions
    store.query(VectorStoreQuery(query_embedding=probes[0].embedding, similarity_top_k=10))
    reopen_s = time.perf_counter() - started
    dense_ms, hybrid_ms, answers = [], [], []
    for probe in probes:
        question = " ".join(probe.text.split()[:8])
        t = time.perf_counter()
        found = store.query(VectorStoreQuery(query_embedding=probe.embedding, similarity_top_k=10))
        dense_ms.append((time.perf_counter() - t) * 1000)
        answers.append(found.ids)
        t = time.perf_counter()
        if args.store == "edge":
            store.query(VectorStoreQuery(query_embedding=probe.embedding, query_str=question, similarity_top_k=10,
                                         sparse_top_k=50, mode=VectorStoreQueryMode.HYBRID))
        else:  # the retriever's way on local mode (one request, prefetches fused by RRF)
            client.query_points("scale", prefetch=[
                models.Prefetch(query=probe.embedding, using="text-dense", limit=50)], query=models.FusionQuery(
                fusion=models.Fusion.RRF), limit=10)
        hybrid_ms.append((time.perf_counter() - t) * 1000)
    # What serving the questions took, before the exact searches below read every vector.
    served_peak_mb, served_anon_mb = peak_rss_mb(), anonymous_mb()
    if args.capped:  # the exact answers of the unbounded run: exact searches would page every vector in
        truths = [set(ids) for ids in json.loads(Path(args.truths).read_text())]
    else:
        truths = []
        for probe in probes:
            exact = client.query_points("scale", query=probe.embedding, using="text-dense", limit=10,
                                        search_params=models.SearchParams(exact=True)).points
            truths.append({str(p.id) for p in exact})
        Path(args.truths).write_text(json.dumps([sorted(ids) for ids in truths]))
    recalls = [len(truth & set(ids)) / len(truth) for truth, ids in zip(truths, answers)]

    def pct(values, q):
        return round(sorted(values)[int(q * (len(values) - 1))], 2)

    other_ef = {}
    if args.store == "edge" and not args.capped:  # the same questions at other ef values (default: edge.HNSW_EF)
        from lightocr_ingest.store import edge

        for ef in args.other_ef:
            edge.HNSW_EF, took, found_share = ef, [], []
            for probe, truth in zip(probes, truths):
                t = time.perf_counter()
                found = store.query(VectorStoreQuery(query_embedding=probe.embedding, similarity_top_k=10))
                took.append((time.perf_counter() - t) * 1000)
                found_share.append(len(truth & set(found.ids)) / len(truth))
            other_ef[ef] = {"dense_p50_ms": pct(took, 0.5), "dense_p90_ms": pct(took, 0.9),
                            "recall_at_10": round(statistics.mean(found_share), 4)}
    client.close()

    print(json.dumps({"reopen_s": round(reopen_s, 2), "dense_p50_ms": pct(dense_ms, 0.5),
                      "dense_p90_ms": pct(dense_ms, 0.9), "hybrid_p50_ms": pct(hybrid_ms, 0.5),
                      "hybrid_p90_ms": pct(hybrid_ms, 0.9), "recall_at_10": round(statistics.mean(recalls), 4),
                      "reader_peak_rss_mb": round(served_peak_mb), "reader_anon_mb": round(served_anon_mb),
                      "peak_rss_with_exact_search_mb": round(peak_rss_mb()),
                      **({"other_ef": other_ef} if other_ef else {})}),
          flush=True)
    return 0


def during(args) -> int:
    """Child process: dense query latency on a quiet store, then while another thread of the same
    process adds ``DURING_POINTS`` points (as the service searches during a job), no lock of
    ours between them."""
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from lightocr_ingest.store import make_vector_store

    client = open_store(args)
    store = make_vector_store(client, "scale", "hybrid")
    probes = make_nodes(0, QUERIES, args.seed + 99)

    def latencies(stop=None) -> list[float]:
        """Dense queries: ``QUERIES`` of them back to back, or, with ``stop``, one every
        ``QUERY_GAP_S`` (a service's steady traffic, not a loop that holds the GIL) until it is set."""
        out = []
        while True:
            probe = probes[len(out) % len(probes)]
            started = time.perf_counter()
            store.query(VectorStoreQuery(query_embedding=probe.embedding, similarity_top_k=10))
            out.append((time.perf_counter() - started) * 1000)
            if stop is None and len(out) == QUERIES:
                return out
            if stop is not None and stop.wait(QUERY_GAP_S):
                return out

    quiet = latencies()
    finished = threading.Event()

    def writer():
        done = args.start
        while done < args.start + DURING_POINTS:
            store.add(make_nodes(done, BATCH, args.seed))
            done += BATCH
        finished.set()

    thread = threading.Thread(target=writer)
    started = time.perf_counter()
    thread.start()
    busy = latencies(finished)
    thread.join()
    written_s = time.perf_counter() - started
    client.close()
    print(json.dumps({"quiet_dense_p50_ms": round(statistics.median(quiet), 2),
                      "during_insert_dense_p50_ms": round(statistics.median(busy), 2),
                      "during_insert_dense_p90_ms": round(sorted(busy)[int(0.9 * (len(busy) - 1))], 2),
                      "queries_during_insert": len(busy), "points_added": DURING_POINTS,
                      "insert_with_queries_pts_s": round(DURING_POINTS / written_s)}), flush=True)
    return 0


def memory_cgroup(limit_mb: int) -> tuple[Path | None, str]:
    """A new memory cgroup beside nothing but its own child, held to ``limit_mb`` with the page
    cache counted, or None and why not. cgroup v1 (``memory.limit_in_bytes``; what this VM has);
    on v2 only where this process's cgroup already delegates the memory controller to children."""
    group = None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            number, controllers, own = line.split(":", 2)
            if "memory" in controllers.split(","):
                base, limit_file = Path("/sys/fs/cgroup/memory") / own.lstrip("/"), "memory.limit_in_bytes"
                break
            if number == "0":
                base, limit_file = Path("/sys/fs/cgroup") / own.lstrip("/"), "memory.max"
                if "memory" not in (base / "cgroup.subtree_control").read_text().split():
                    return None, f"cgroup v2: {base} does not delegate the memory controller"
                break
        else:
            return None, "no memory cgroup controller"
        group = base / f"store-scale-{os.getpid()}"
        group.mkdir()
        (group / limit_file).write_text(str(limit_mb * 2**20))
        return group, ""
    except (OSError, ValueError) as exc:
        if group is not None:
            remove_cgroup(group)
        return None, f"cannot make a memory cgroup here ({exc})"


def remove_cgroup(group: Path) -> str:
    """Remove an emptied cgroup (its last process may take a moment to leave); '' or why not."""
    for _ in range(50):
        try:
            group.rmdir()
            return ""
        except FileNotFoundError:
            return ""
        except OSError as exc:
            error = str(exc)
            time.sleep(0.1)
    return error


def cgroup_facts(group: Path) -> dict:
    """The cgroup's peak (page cache included) and how often it hit its limit or killed."""
    facts = {}
    for name, key in (("memory.max_usage_in_bytes", "cgroup_peak_mb"), ("memory.peak", "cgroup_peak_mb")):
        if (group / name).is_file():
            facts[key] = round(int((group / name).read_text()) / 2**20)
    if (group / "memory.failcnt").is_file():
        facts["limit_hits"] = int((group / "memory.failcnt").read_text())
    if (group / "memory.events").is_file():
        events = dict(line.split() for line in (group / "memory.events").read_text().splitlines())
        facts["limit_hits"], facts["oom_kills"] = int(events.get("max", 0)), int(events.get("oom_kill", 0))
    return facts


def drop_from_page_cache(folder: Path) -> None:
    """Write the folder's pages to disk and drop them from the page cache, so each reader starts
    cold and alike (Edge's load drops its segment files anyway; this takes the rest too), and a
    capped reader's pages are charged to its own cgroup (a page is charged to whoever read it first)."""
    os.sync()
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def ask_capped(store: str, folder: Path, seed: int, truths: Path, limit_mb: int) -> dict:
    """The reader's questions again in a process held to ``limit_mb`` (page cache included)."""
    group, why = memory_cgroup(limit_mb)
    if group is None:
        return {"limit_mb": limit_mb, "skipped": why}
    row = {"limit_mb": limit_mb}
    try:
        drop_from_page_cache(folder)
        command = [sys.executable, str(Path(__file__).resolve()), "--_ask", store, str(folder), str(seed),
                   str(truths), "capped"]
        asked = subprocess.run(["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *command],
                               capture_output=True, text=True)
        row.update(cgroup_facts(group))
        if asked.returncode:
            return {**row, "failed": asked.returncode, "stderr": asked.stderr[-500:]}
        answered = json.loads(asked.stdout.strip().splitlines()[-1])
        answered.pop("peak_rss_with_exact_search_mb", None)
        return {**row, **answered}
    finally:
        if why := remove_cgroup(group):
            row["cgroup_left"] = f"{group} ({why})"


def run_store(store: str, sizes: list[int], seed: int, other_ef: list[int] = (),
              reader_memory_mb: list[int] = ()) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix=f"store-scale-{store}-"))
    truths = folder.with_name(folder.name + "-truths.json")  # the exact answers, for the capped readers
    rows = []
    try:
        script = Path(__file__).resolve()
        start = 0
        for size in sizes:  # one writer process a step, so each step's peak RSS is its own
            grown = subprocess.run([sys.executable, str(script), "--_grow", store, str(folder), str(seed),
                                    str(start), str(size)], capture_output=True, text=True)
            if grown.returncode:
                print(grown.stderr[-3000:], file=sys.stderr)
                break
            row = json.loads(grown.stdout.strip().splitlines()[-1])
            drop_from_page_cache(folder)  # the writer's pages on disk, the reader cold: not the writer's write-back
            asked = subprocess.run([sys.executable, str(script), "--_ask", store, str(folder), str(seed),
                                    str(truths), "unbounded", *map(str, other_ef)],
                                   capture_output=True, text=True)
            if asked.returncode:
                print(asked.stderr[-3000:], file=sys.stderr)
                break
            row.update(json.loads(asked.stdout.strip().splitlines()[-1]))
            if store == "edge" and reader_memory_mb:
                row["capped"] = [ask_capped(store, folder, seed, truths, mb) for mb in reader_memory_mb]
            row.update(store=store, disk_mb=round(sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())
                                                    / 2**20))
            if store == "edge" and size == CONCURRENT_AT:  # searching while storing, then back to size
                concurrent = subprocess.run([sys.executable, str(script), "--_during", store, str(folder), str(seed),
                                             str(size)], capture_output=True, text=True)
                if concurrent.returncode == 0:
                    row["concurrent"] = json.loads(concurrent.stdout.strip().splitlines()[-1])
                    size += DURING_POINTS
                else:
                    print(concurrent.stderr[-3000:], file=sys.stderr)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            start = size
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        truths.unlink(missing_ok=True)
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("--_grow", "--_ask", "--_during"):
        ns = argparse.Namespace(store=sys.argv[2], folder=sys.argv[3], seed=int(sys.argv[4]))
        if sys.argv[1] == "--_grow":
            ns.start, ns.size = int(sys.argv[5]), int(sys.argv[6])
            return grow(ns)
        if sys.argv[1] == "--_during":
            ns.start = int(sys.argv[5])
            return during(ns)
        ns.truths, ns.capped = sys.argv[5], sys.argv[6] == "capped"
        ns.other_ef = [int(ef) for ef in sys.argv[7:]]
        return ask(ns)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-local", action="store_true", help="skip qdrant-client's local mode")
    parser.add_argument("--local-sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="sizes for local mode (it holds every chunk in memory, ~26 kB each: a million "
                             "would need about 26 GB)")
    parser.add_argument("--other-ef", type=int, nargs="*", default=[],
                        help="also ask the dense questions at these HNSW ef values (recall and latency each)")
    parser.add_argument("--reader-memory-mb", type=int, nargs="*", default=[],
                        help="also ask in a process held to each of these many MB, page cache included "
                             "(a memory cgroup)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    results = {"machine": f"{platform.node()} ({platform.processor() or platform.machine()}), {os.cpu_count()} cores",
               "date": time.strftime("%Y-%m-%d"), "edge": run_store("edge", args.sizes, args.seed, args.other_ef,
                                                                 args.reader_memory_mb)}
    if not args.no_local:
        results["local_mode"] = run_store("local", [size for size in args.sizes if size in args.local_sizes],
                                          args.seed)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
