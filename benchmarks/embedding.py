"""Embedding benchmark: the default embedder (all-MiniLM-L6-v2) on CPU, float32 vs bfloat16
matrix products (``embedding.precision``), and what it does to vectors and retrieval.

- Speed: chunks/s and core-ms per chunk of ``make_embed_model(device="cpu", precision=...)``,
  called as the pipeline calls it (``get_text_embedding_batch``, batches of 32), on real
  chunk texts: the pipeline's own chunks (256-token budget, header path prefixed) of the
  text layers of ``tests/real_documents``, ``samples/`` and the first pages of the Yosys
  manual (fetched as ``benchmarks/retrieval.py`` does; left out when it cannot be). The
  variants run in turn within each repeat; figures are medians over repeats.
- Vectors: cosine of each bfloat16 vector to its float32 one; top-5 chunks of each labelled
  question (``samples/queries.yaml``, ``benchmarks/questions/real_documents.yaml``) over
  those texts, both ways.
- Retrieval: ``samples`` (CPU engine) and ``real`` (text layers through the vLLM path, as
  ``benchmarks/retrieval.py``) ingested once per precision into hybrid collections; recall@1/3/5
  and MRR, dense and hybrid.
- ``--onnx``: also onnxruntime, float32 (the model exported and graph-optimised) and int8
  (dynamic, per-channel): the alternatives that were measured and not taken (needs
  ``pip install onnx``).

bfloat16 is fast only on processors with AMX (Intel Xeon 4th generation on); the table says
whether this one has it. The machine may be shared with other work: read the ratios, and
compare core-ms (CPU time) rather than chunks/s when it is busy. Run from the repository root::

    .venv/bin/python benchmarks/embedding.py                      # ~5 minutes on 2 cores
    .venv/bin/python benchmarks/embedding.py --onnx --json .bench/embedding.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import retrieval  # noqa: E402  (the sibling module: fetch_manual, text_layer_answers, evaluate)

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [REPO / "samples" / "queries.yaml", REPO / "benchmarks" / "questions" / "real_documents.yaml"]
PRECISIONS = ("float32", "bfloat16")
TOP = 5


# --- texts --------------------------------------------------------------------------------
def chunk_texts(limit: int) -> tuple[list[str], list[str]]:
    """The embedded texts of the pipeline's chunks of real text layers, and where they came from."""
    from llama_index.core.schema import Document, MetadataMode

    from lightocr_ingest.ocr.postprocess import text_layer_markdown
    from lightocr_ingest.pages import DocumentSource
    from lightocr_ingest.pipeline import parse_config
    from lightocr_ingest.pipeline.build import make_parser

    pdfs = sorted((REPO / "tests" / "real_documents").glob("*.pdf")) + sorted((REPO / "samples").glob("*.pdf"))
    try:
        pdfs.append(retrieval.fetch_manual())
    except Exception as error:  # noqa: BLE001 - no apt-get here: the others still make a set
        print(f"the Yosys manual left out ({error})", file=sys.stderr)
    parser = make_parser(parse_config({}))
    texts, sources = [], []
    for pdf in pdfs:
        documents = []
        with DocumentSource(pdf) as source:
            for number in range(1, source.source.page_count + 1):
                page = source.render_page(number)
                documents.append(Document(text=text_layer_markdown(page.text_layer or ""),
                                          metadata={"file_name": pdf.name, "page": number}))
                if len(texts) + len(documents) * 2 >= limit:  # pages give ~2-5 chunks: enough read
                    break
        texts += [node.get_content(metadata_mode=MetadataMode.EMBED) for node in parser.chunk_file(documents)]
        sources.append(pdf.name)
        if len(texts) >= limit:
            break
    return texts[:limit], sources


def token_counts(texts: list[str]) -> list[int]:
    from lightocr_ingest.chunking.tokens import tokenizer_counter
    from lightocr_ingest.embedding import resolve_model

    count = tokenizer_counter(resolve_model(None))
    return [count(text) for text in texts]


# --- speed --------------------------------------------------------------------------------
def torch_variant(precision: str):
    from lightocr_ingest.embedding import make_embed_model

    model = make_embed_model(None, "cpu", 32, precision)
    if model.precision != precision:
        raise SystemExit(f"make_embed_model gave {model.precision} for {precision}")
    return lambda texts: model.get_text_embedding_batch(texts)


def onnx_variants(workdir: Path) -> dict:
    """onnxruntime float32 and int8 on the same model: the export, graph fusion and
    quantisation a user would do, run through tokenizers + mean pooling + L2 norm (the model's
    sentence-transformers modules)."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
    except ImportError:
        raise SystemExit("--onnx needs the onnx package: .venv/bin/pip install -c constraints.txt onnx") from None
    import numpy as np
    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from tokenizers import Tokenizer
    from transformers import AutoModel

    from lightocr_ingest.embedding import resolve_model

    path = resolve_model(None)
    bert = AutoModel.from_pretrained(path, attn_implementation="eager").eval()  # sdpa exports to a slow graph

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = torch.ones(2, 16, dtype=torch.long)
    exported, fused, int8 = (str(workdir / name) for name in ("model.onnx", "fused.onnx", "int8.onnx"))
    torch.onnx.export(Encoder(), (example, example, example * 0), exported, dynamo=False, input_names=names,
                      output_names=["hidden"], dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + ["hidden"]},
                      opset_version=17)
    optimize_model(exported, model_type="bert", num_heads=bert.config.num_attention_heads,
                   hidden_size=bert.config.hidden_size).save_model_to_file(fused)
    quantize_dynamic(fused, int8, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"],
                     extra_options={"DefaultTensorType": 1})  # FLOAT: the fused ops hide their output types
    tokenizer = Tokenizer.from_file(f"{path}/tokenizer.json")
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding()

    def variant(file: str):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = os.cpu_count() or 1, 1
        session = onnxruntime.InferenceSession(file, options, providers=["CPUExecutionProvider"])

        def embed(texts: list[str]) -> list[list[float]]:
            out = []
            for start in range(0, len(texts), 32):
                encoded = tokenizer.encode_batch(texts[start:start + 32])
                ids = np.array([e.ids for e in encoded], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
                hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                            "token_type_ids": np.zeros_like(ids)})[0]
                pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
                out.extend((pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).tolist())
            return out

        return embed

    return {"onnx float32": variant(fused), "onnx int8": variant(int8)}


def measure(variants: dict, texts: list[str], repeats: int) -> tuple[dict, dict]:
    """Median chunks/s and core-ms per chunk of each variant (in turn within each repeat)."""
    vectors = {name: embed(texts) for name, embed in variants.items()}  # warm-up, and the vectors
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, embed in variants.items():
            started, cpu = time.perf_counter(), time.process_time()
            embed(texts)
            runs[name].append((time.perf_counter() - started, time.process_time() - cpu))
    speed = {}
    for name, timings in runs.items():
        wall, cpu = statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)
        speed[name] = {"chunks_per_s": round(len(texts) / wall, 2),
                       "core_ms_per_chunk": round(cpu * 1000 / len(texts), 2),
                       "chunks_per_s_runs": [round(len(texts) / t[0], 2) for t in timings]}
    base = speed["float32"]
    for row in speed.values():
        row["speed_ratio"] = round(row["chunks_per_s"] / base["chunks_per_s"], 3)
        row["core_ms_ratio"] = round(row["core_ms_per_chunk"] / base["core_ms_per_chunk"], 3)
    return speed, vectors


# --- vectors ------------------------------------------------------------------------------
def agreement(vectors: dict, texts: list[str]) -> dict:
    """How each variant's vectors and top-5 rankings compare with float32's."""
    import numpy as np
    import yaml

    from lightocr_ingest.embedding import make_embed_model

    questions = [q["question"] for path in QUESTIONS for q in yaml.safe_load(path.read_text(encoding="utf-8"))]
    reference = np.asarray(vectors["float32"])
    ref_queries = np.asarray(make_embed_model(None, "cpu", 32, "float32").get_text_embedding_batch(questions))
    ref_scores = ref_queries @ reference.T
    ref_top = np.argsort(-ref_scores, axis=1)[:, :TOP]
    out = {}
    for name, found in vectors.items():
        if name == "float32":
            continue
        found = np.asarray(found)
        cosine = (found * reference).sum(1)
        # the questions embedded the same way as the texts (the torch variants through the pipeline's model)
        queries = (np.asarray(make_embed_model(None, "cpu", 32, name).get_text_embedding_batch(questions))
                   if name in PRECISIONS else ref_queries)
        scores = queries @ found.T
        top = np.argsort(-scores, axis=1)[:, :TOP]
        out[name] = {"cosine_min": round(float(cosine.min()), 6), "cosine_mean": round(float(cosine.mean()), 6),
                     "questions": len(questions),
                     "top1_same": round(float((top[:, 0] == ref_top[:, 0]).mean()), 3),
                     f"top{TOP}_same_order": round(float((top == ref_top).all(1).mean()), 3),
                     f"top{TOP}_same_set": round(float(np.mean([set(a) == set(b) for a, b in zip(top, ref_top)])), 3),
                     "score_diff_max": round(float(np.abs(scores - ref_scores).max()), 4)}
    return out


# --- retrieval ----------------------------------------------------------------------------
def retrieval_both_ways(workdir: Path, sets: list[str]) -> dict:
    from lightocr_ingest.pipeline import Ingestor, parse_config
    from lightocr_ingest.testing import FakeVLLMServer

    samples = sorted(p for p in (REPO / "samples").iterdir() if p.suffix in (".pdf", ".png"))
    real = sorted((REPO / "tests" / "real_documents").glob("*.pdf"))
    answers = retrieval.text_layer_answers(real) if "real" in sets else {}
    out: dict = {}
    with FakeVLLMServer(responder=lambda request: answers[request.image_sha256]) as server:
        for name, paths, questions, ocr in (
                ("samples", samples, QUESTIONS[0], {"engine": "cpu"}),
                ("real", real, QUESTIONS[1], {"engine": "vllm", "url": server.url})):
            if name not in sets:
                continue
            for precision in PRECISIONS:
                config = parse_config({
                    "ocr": {**ocr, "cache_dir": str(workdir / "ocr-cache")},  # the second precision reads no page again
                    "embedding": {"device": "cpu", "precision": precision},
                    "qdrant": {"path": str(workdir / "qdrant"), "collection": f"{name}-{precision}"},
                    "retrieval": {"mode": "hybrid"}})
                ingestor = Ingestor(config)
                try:
                    used = ingestor.embed_model.precision
                    report = ingestor.run([str(p) for p in paths])
                finally:
                    ingestor.close()
                if used != precision:
                    raise SystemExit(f"the pipeline embedded in {used}, not {precision}: does it pass "
                                     "embedding.precision to make_embed_model?")
                assert report.ok, f"{name}: ingestion failed"
                scores = retrieval.evaluate(config, questions)
                out.setdefault(name, {})[precision] = {mode: scores[mode] for mode in ("dense", "hybrid")}
                out[name]["questions"] = scores["questions"]
                print(name, precision, json.dumps(out[name][precision]), file=sys.stderr)
            out[name]["unchanged"] = all(out[name]["float32"][mode] == out[name]["bfloat16"][mode]
                                         for mode in ("dense", "hybrid"))  # misses@5 too: the same questions
    return out


# --- report -------------------------------------------------------------------------------
def machine() -> dict:
    import torch

    from lightocr_ingest.embedding.precision import cpu_has_amx, pick_precision

    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "amx": cpu_has_amx(),
            "auto_precision_on_cpu": pick_precision("auto", "cpu"),
            "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def print_table(result: dict) -> None:
    m = result["machine"]
    print(f"\n{m['machine']}, torch {m['torch']} ({m['torch_threads']} threads), AMX: {m['amx']}, "
          f"auto on this CPU: {m['auto_precision_on_cpu']}, load average before: {m['load_average']}")
    t = result["texts"]
    print(f"{t['chunks']} chunks (tokens: median {t['tokens_median']}, {t['share_at_256']:.0%} at the model's 256), "
          f"from {', '.join(t['sources'])}; medians of {result['repeats']} repeats\n")
    print(f"{'variant':14s} {'chunks/s':>9s} {'ratio':>6s} {'core-ms/chunk':>14s} {'ratio':>6s}  "
          f"{'cos min':>8s} {'top-1 same':>10s} {f'top-{TOP} same':>10s} {'max score diff':>14s}")
    for name, row in result["speed"].items():
        a = result["agreement"].get(name)
        quality = (f"{a['cosine_min']:8.5f} {a['top1_same']:10.3f} {a[f'top{TOP}_same_order']:10.3f} "
                   f"{a['score_diff_max']:14.4f}" if a else f"{'(reference)':>8s}")
        print(f"{name:14s} {row['chunks_per_s']:9.1f} {row['speed_ratio']:6.2f} {row['core_ms_per_chunk']:14.1f} "
              f"{row['core_ms_ratio']:6.2f}  {quality}")
    for name, sets in result.get("retrieval", {}).items():
        print(f"\nretrieval, {name} ({sets['questions']} questions): {'unchanged' if sets['unchanged'] else 'CHANGED'}")
        for precision in PRECISIONS:
            for mode in ("dense", "hybrid"):
                row = sets[precision][mode]
                shown = [f"{k} {v}" for k, v in row.items() if k in ("recall@1", "recall@3", "recall@5", "MRR")]
                print(f"  {precision:9s} {mode:7s} " + "  ".join(shown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=320, help="chunk texts to embed per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--onnx", action="store_true", help="also onnxruntime float32 and int8 (needs onnx)")
    parser.add_argument("--sets", default="samples,real", help="retrieval sets; '' for none")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    result: dict = {"machine": machine(), "repeats": args.repeats}
    texts, sources = chunk_texts(args.chunks)
    tokens = sorted(token_counts(texts))
    result["texts"] = {"chunks": len(texts), "sources": sources, "tokens_median": tokens[len(tokens) // 2],
                       "share_at_256": sum(t >= 256 for t in tokens) / len(tokens)}
    with tempfile.TemporaryDirectory() as tmp:
        variants = {precision: torch_variant(precision) for precision in PRECISIONS}
        if args.onnx:
            variants.update(onnx_variants(Path(tmp)))
        result["speed"], vectors = measure(variants, texts, args.repeats)
        result["agreement"] = agreement(vectors, texts)
        sets = [s for s in args.sets.split(",") if s]
        if sets:
            result["retrieval"] = retrieval_both_ways(Path(tmp), sets)
    print(json.dumps(result, indent=1))
    print_table(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
