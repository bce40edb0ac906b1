# lightocr-ingest service: `lightocr-ingest serve` on port 8080, as a non-root user.
# Build:  docker build -t lightocr-ingest .
# Run:    docker compose up   (compose.yaml: vLLM with LightOnOCR-2-1B on a GPU, Qdrant, this service)

# --- build: a virtualenv with the package and the service extra --------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY lightocr_ingest ./lightocr_ingest
# The CPU build of torch (constraints.txt pins its version): the service embeds on CPU, the GPU is vLLM's
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt ".[service]"

# --- run: the virtualenv only, no compilers, no sources -----------------------------------------
FROM python:3.11-slim AS run
# libgl/libglib: OpenCV's headless wheel still needs them; curl: the health check
RUN apt-get update && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 lightocr
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
# The OCR cache (ocr.cache_dir: auto) on the volume below, not in the container's own ~/.cache
ENV LIGHTOCR_CACHE_DIR=/home/lightocr/.lightocr/ocr-cache
# The volume's mount point exists and is the user's, so a fresh named volume is writable by it
RUN mkdir -p /home/lightocr/.lightocr && chown -R lightocr:lightocr /home/lightocr
USER lightocr
WORKDIR /home/lightocr
# The OCR cache and a local Qdrant folder (when no Qdrant server is given) live here
VOLUME ["/home/lightocr/.lightocr"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["lightocr-ingest", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["--ocr-engine", "vllm"]
