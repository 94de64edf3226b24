# The ML image for worker-gpu, worker, beat and the playground: CUDA torch first, then
# requirements/ml.txt + web.txt without touching that torch. The CUDA wheel carries its own CUDA
# runtime, so the host needs only the NVIDIA driver and the NVIDIA Container Toolkit.
# Not built or run in the development sandbox (no Docker engine there); see README "docker-compose".
FROM python:3.11-slim

# Pick the wheel index matching your driver: https://pytorch.org/get-started/locally/
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings DISTILLERY_VAR_DIR=/app/var DISTILLERY_DATA_DIR=/data \
    HF_HOME=/data/hf-cache

WORKDIR /app
COPY requirements/ requirements/
# constraints.txt pins the CPU build (torch==X+cpu) for `make run`; drop that one line here so pip
# keeps the CUDA build (torch==X in ml.txt matches X+cuNNN) instead of trying to replace it.
RUN TORCH=$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' requirements/constraints.txt) \
 && pip install "torch==${TORCH}" --index-url "${TORCH_INDEX_URL}" \
 && grep -v '^torch==' requirements/constraints.txt > /tmp/constraints-cuda.txt \
 && pip install -r requirements/ml.txt -r requirements/web.txt -c /tmp/constraints-cuda.txt \
 && python -c "import torch; assert '+cpu' not in torch.__version__, torch.__version__"

COPY . .
RUN useradd --create-home --uid 1000 distillery && mkdir -p /data && chown distillery /data
USER distillery
CMD ["celery", "-A", "webapp.celery", "worker", "-Q", "gpu", "--concurrency", "1", "--prefetch-multiplier", "1", "--pool", "solo", "-n", "gpu@%h"]
