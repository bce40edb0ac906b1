"""The Ray Data plan of a run: render tasks, the OCR actor, the chunking actor and the embedding
pool, with what each asks the cluster for and why (see ``driver`` for the flow)."""

from __future__ import annotations

import pickle

from ...ocr.cache import resolve_cache_dir
from ...ocr.servers import split_urls
from ..config import PipelineConfig
from .ocr_actor import OcrPages
from .workers import ChunkFiles, EmbedChunks, FileToRead, render_group

# Logical CPUs each stage asks Ray for (scheduling only: they bound how many run at once, not the CPU
# they use). The actors add up to 0.95, so on a 2-core machine two render tasks run beside them; on a
# cluster, render tasks take the spare cores.
RENDER_BLOCK_BYTES = 1 << 20  # blocks this small leave a task about a row (8 pages of PNG) at a time
RENDER_TASK_CPUS = 0.5  # rendering, orientation and PNG encoding: CPU work, one thread a task. Each new
#                        worker process costs about a core-second to start (Python, Ray, onnxruntime):
#                        fewer, busier workers fill the GPUs' first batch sooner (a quarter core: slot
#                        use 0.44 against 0.49 on 2 cores, one run each)
RENDER_PAGES_PER_TASK = 16  # pages a render task takes on (whole files: a longer one is a task of its own, and
#                             streams). Starting a task costs tens of milliseconds and only a few run at once
#                             (their CPU ask), so small tasks leave the workers waiting between them: at 4
#                             files a task the 233-page run's last page reached the GPU 11.8 s after the
#                             first, at 16 pages 10.0 s (one run each; local: 5.0)
# Each call into the OCR actor takes one block of rendered rows as the render task made it
# (``batch_size=None``; calls run concurrently: see ocr_actor.OcrPages). A batch size in rows would have
# Ray Data cut blocks into bundles of that many rows, and the rows left over waited for later
# blocks: on the 233-page run the last of them reached the GPU 41 s after the first page, not 12.
OCR_MAX_CALLS = 1024  # at most this many calls (threads, most of them waiting) at once in the OCR actor
OCR_ACTORS = 1  # each holds the whole window over every URL (max_in_flight per server): more would overload them
OCR_ACTOR_CPUS = 0.2  # an event loop and its requests, mostly waiting on the servers. Not the render
#                      tasks' share: Ray Data fuses operations that ask for the same, and rendering
#                      would run inside the actor again, one file at a time per call
EMBED_FILES_PER_BATCH = 8  # files whose chunks are embedded together
EMBED_ACTOR_CPUS = 0.5  # on CPU torch uses every core of the machine whatever this says; asking for less
#                         leaves render tasks room to run meanwhile
CHUNK_FILES_PER_BATCH = 4  # files cut per call
CHUNK_ACTOR_CPUS = 0.25
CHUNK_ACTORS = 1  # one cuts about 300 pages a second (3 core-ms a page), more than 40 GPUs read; each
#                  more actor loads its own tokenizer (a pool growing to 8 cost 30 core-ms a page here)
ACTORS_START_S = 600  # the longest each stage's actors may take to start (an autoscaling cluster may add nodes)


def build_dataset(config: PipelineConfig, to_read: list[FileToRead], longest_side: int,
                  text_words: bool | str = False):
    """The Ray Data plan over the files to read (see the module docstring), lazy until iterated,
    and what its actors ask the cluster for (for an error that says so)."""
    import ray
    import ray.data

    worker_config = for_workers(config)
    e = config.embedding
    gpus = ray.cluster_resources().get("GPU", 0)
    embed_on_gpu = e.device.startswith("cuda") or (e.device == "auto" and gpus > 0)
    calls = ocr_calls(config)
    # Small enough that every render slot of the cluster gets a task, at most RENDER_PAGES_PER_TASK.
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) / RENDER_TASK_CPUS))
    groups = task_groups(to_read, pages_per_task(sum(file.pages for file in to_read), slots))
    # One block a group: batch_size=1 then makes a task of each (from_items would put several in a block).
    dataset = ray.data.from_items([{"files": pickle.dumps(group)} for group in groups],
                                  override_num_blocks=max(1, len(groups)))
    actors = (f"OCR: {OCR_ACTORS} x {OCR_ACTOR_CPUS} CPU; chunking: {CHUNK_ACTORS} x {CHUNK_ACTOR_CPUS} CPU; "
              f"embedding: {max(1, int(gpus)) if embed_on_gpu else 1} x "
              + ("1 GPU" if embed_on_gpu else f"{EMBED_ACTOR_CPUS} CPU"))
    return (dataset
            .map_batches(render_group, fn_kwargs={"config": worker_config, "longest_side": longest_side,
                                                         "text_words": text_words},
                         batch_size=1, batch_format="pandas", num_cpus=RENDER_TASK_CPUS)
            .map_batches(OcrPages, fn_constructor_kwargs={"config": worker_config}, batch_size=None,
                         batch_format="pandas", num_cpus=OCR_ACTOR_CPUS,
                         compute=ray.data.ActorPoolStrategy(size=OCR_ACTORS, max_tasks_in_flight_per_actor=calls,
                                                            max_concurrent_calls_per_actor=calls,
                                                            enable_true_multi_threading=True))
            .map_batches(ChunkFiles, fn_constructor_kwargs={"config": worker_config}, batch_size=CHUNK_FILES_PER_BATCH,
                         batch_format="pandas", num_cpus=CHUNK_ACTOR_CPUS,
                         compute=ray.data.ActorPoolStrategy(size=CHUNK_ACTORS))
            .map_batches(EmbedChunks, fn_constructor_kwargs={"config": worker_config},
                         batch_size=EMBED_FILES_PER_BATCH, batch_format="pandas",
                         compute=ray.data.ActorPoolStrategy(size=max(1, int(gpus)) if embed_on_gpu else 1),
                         num_gpus=1 if embed_on_gpu else 0, num_cpus=EMBED_ACTOR_CPUS)), actors


def pages_per_task(pages: int, slots: int) -> int:
    """Pages a render task takes on: ``RENDER_PAGES_PER_TASK``, or fewer where a cluster has more
    render slots (its CPUs over what a task asks) than that would give tasks."""
    return max(1, min(RENDER_PAGES_PER_TASK, -(-pages // slots)))


def task_groups(to_read: list[FileToRead], pages_per_task: int = RENDER_PAGES_PER_TASK) -> list[list[FileToRead]]:
    """The files to read, in order, cut into render tasks of about ``pages_per_task`` pages
    (``pages``: a file's pages to read): sixteen single-page scans go together, a long PDF alone."""
    groups: list[list[FileToRead]] = []
    pages = 0
    for file in to_read:
        if not groups or pages + file.pages > pages_per_task:
            groups.append([])
            pages = 0
        groups[-1].append(file)
        pages += file.pages
    return groups


def ocr_calls(config: PipelineConfig) -> int:
    """Concurrent calls into the OCR actor: enough blocks queued to cover the reader's look-ahead
    (twice the window over every URL) were each block one page."""
    window = config.ocr.max_in_flight * max(1, len(split_urls(config.ocr.url or "")))
    return max(2, min(OCR_MAX_CALLS, 2 * window))




def for_workers(config: PipelineConfig) -> PipelineConfig:
    """The config with the OCR cache's folder made absolute as the driver sees it: workers share
    neither its working directory nor, on other nodes, its environment ("auto")."""
    cache_dir = resolve_cache_dir(config.ocr.cache_dir)
    if cache_dir:
        ocr = config.ocr.model_copy(update={"cache_dir": cache_dir})
        return config.model_copy(update={"ocr": ocr})
    return config
