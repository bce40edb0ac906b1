"""The settings' defaults, each with its reason, in a module that imports nothing.

The pipeline config (``pipeline/config.py``) shows these defaults and the stages act on them; a
config is loaded in every process (the CLI, the service, Ray workers), so what it needs must not
pull in LlamaIndex, the OpenAI client, torch or onnxruntime. The stages re-export the names they
own (``ocr.vllm.MAX_IN_FLIGHT`` is this ``MAX_IN_FLIGHT``).
"""

# --- ocr: the vLLM client ----------------------------------------------------------------------
DEFAULT_URL = "http://localhost:8000/v1"
MAX_IN_FLIGHT = 256  # pages in flight at once, per server: vLLM batches concurrent requests, and a 1B model's
#                      decode step is bound by memory bandwidth, so the GPU's token rate keeps growing with the
#                      batch up to vLLM's max_num_seqs (256 by default). A window of 64 fills a quarter of the
#                      batch and caps a GPU near 0.89 of its rate; 256 fills it (and a page waits at most
#                      one batch's turn in vLLM's own queue when several clients share a server)
REQUEST_TIMEOUT_S = 300.0  # a 4096-token page at the ~23 tok/s each of 256 sequences gets on an H100 takes ~180 s

# --- ocr: retries, the temperature ladder, fallbacks -------------------------------------------
MAX_RETRIES = 5  # after the first request: 0.5+1+2+4+8 s of waits ride out a vLLM restart
BACKOFF_BASE_S = 0.5
PAGE_DEADLINE_S = 900.0  # all requests for one page, waits included; then fall back
RETRY_TEMPERATURES = (0.4, 0.6, 0.8)  # after the model card's 0.2; higher starts to invent text
FALLBACKS = ("text_layer", "cpu")  # in this order: the text layer is exact when present, and free

# --- ocr: the cache ----------------------------------------------------------------------------
USER_CACHE = "auto"  # the cache_dir setting that means the user's cache folder (ocr.cache.resolve_cache_dir)

# --- chunking: regions -------------------------------------------------------------------------
REGIONS_MODES = ("Where each chunk lies on its pages (metadata 'regions'): auto: from the PDF text layer or the CPU "
                 "engine's lines; locate: also run the embedded detector on scans read by vLLM (about 9 CPU-seconds "
                 "a page on 2 cores); off: none.")

# --- retrieval: hybrid search ------------------------------------------------------------------
RRF_K = 10  # reciprocal rank fusion: score = sum over the two lists of 1 / (RRF_K + rank). The best MRR of 2
#            (Qdrant's default), 10 and 60 (the literature's) on benchmarks/questions/real_documents.yaml; 60
#            drowns an exact term that only BM25 ranks high, 2 lets either list's first hit win alone
PREFETCH = 50  # candidates from each list before fusing: RRF needs the ranks of hits beyond the top k of each
#                (a chunk 30th by meaning can be 1st by its terms); 50 cost nothing measurable here
