# ninv images: one builder, two runtime targets.
#
#   docker build --target api    -t ninv-api .      # FastAPI service, no torch (small)
#   docker build --target worker -t ninv-worker .   # Celery worker, CUDA build of torch
#   docker build --target worker -t ninv-worker-cpu \
#       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
#
# compose.yaml builds both; see the comments there for GPUs.
#
# The worker is python:3.11-slim plus the CUDA wheel of torch from the PyTorch index, not an
# nvidia/cuda base image: the torch wheel already carries its own CUDA runtime, cuBLAS and cuDNN
# (as nvidia-* wheels), so a CUDA base image would only add a second copy of those libraries
# and a second Python. The host needs the NVIDIA driver and the NVIDIA Container Toolkit;
# the container needs nothing else. The api and the worker run the same Python.

# ---------------------------------------------------------------------------------------------
# base: the Python both targets run, and the non-root user they run as.
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 ninv \
    && useradd --system --uid 10001 --gid ninv --create-home --home-dir /home/ninv \
        --shell /usr/sbin/nologin ninv \
    && mkdir /app \
    && chown ninv:ninv /app

# With NINV_REDIS_URL set (as in compose.yaml), nothing is written here; without it the
# embedded default keeps its state under /app/.ninv, owned by the service user.
WORKDIR /app

# ---------------------------------------------------------------------------------------------
# builder: one wheel of the project (the packages only: no tests, bench or dev files).
FROM base AS builder

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ninv/ ninv/
COPY service/ service/
COPY worker/ worker/
COPY client/ client/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
# api: `ninv serve` with the service extra only (FastAPI, uvicorn, redis, celery; no torch).
FROM base AS api

COPY --from=builder /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir "$(find /tmp/wheels -name 'ninv-*.whl')[service]" \
    && rm -rf /tmp/wheels

USER 10001:10001
EXPOSE 8000
# slim has no curl: the check is Python's urllib (a non-2xx answer or no answer fails it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# The API refuses a non-loopback host unless NINV_API_KEYS is set: that is deliberate.
CMD ["ninv", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------
# worker: `ninv worker` with the worker extra, a CUDA build of torch, and Flower for monitoring.
FROM base AS worker

# Change these two together (pytorch.org lists which CUDA builds each torch release has);
# TORCH_VERSION matches the Makefile's, so images run the torch the test suite ran.
# https://download.pytorch.org/whl/cpu gives a small CPU-only worker image.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG TORCH_VERSION=2.13.0
ARG FLOWER_VERSION=2.2.0

# Torch first, in its own layer: it is large and changes far less often than the code.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

COPY --from=builder /wheels/ /tmp/wheels/
# torch is already satisfied, so pip keeps the build installed above.
RUN pip install --no-cache-dir "$(find /tmp/wheels -name 'ninv-*.whl')[worker]" \
        "flower==${FLOWER_VERSION}" \
    && rm -rf /tmp/wheels

# The NVIDIA runtime mounts the driver's compute libraries (and nvidia-smi) into the container;
# which GPUs it sees is chosen by the host (compose device reservations), never baked in here.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility

USER 10001:10001
# Not `celery inspect ping`: the worker runs the solo pool, so it cannot answer a ping while it
# is solving, and every long job would mark it unhealthy. A dead worker process ends the
# container (restart policy); this checks the one thing it needs from outside: the broker.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import redis; from ninv.settings import Settings; url = Settings().redis_url; assert url, 'NINV_REDIS_URL is not set'; redis.Redis.from_url(url, socket_timeout=5).ping()"]
CMD ["ninv", "worker"]
