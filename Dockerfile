# sharpeyes container image.
#   CPU:  docker build -t sharpeyes .
#   CUDA: docker build --build-arg BASE_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 \
#                      --build-arg EXTRAS=gpu -t sharpeyes:cuda .
# Models are not baked in: mount a model cache at /models (SHARPEYES_CACHE) or let the resolver
# download them from their official URLs on first start.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SHARPEYES_CACHE=/models SHARPEYES_KEY_DIR=/data/keys

# python3 + venv for CUDA base images (the python image already has them); libGL/glib for OpenCV.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 ca-certificates fonts-wqy-zenhei \
      $(command -v python3 >/dev/null || echo python3 python3-venv python3-pip) \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY pipeline ./pipeline
COPY models ./models
COPY streams ./streams
COPY api ./api
COPY sample_videos ./sample_videos
# the sharpeyes namespace: links to the folders above (the wheel installs them as sharpeyes.*)
COPY sharpeyes ./sharpeyes
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && if [ "$EXTRAS" = "gpu" ]; then \
      /opt/venv/bin/pip install ".[gpu]" && /opt/venv/bin/pip uninstall -y onnxruntime \
      && /opt/venv/bin/pip install --force-reinstall --no-deps "onnxruntime-gpu>=1.18"; \
    else /opt/venv/bin/pip install "."; fi
ENV PATH=/opt/venv/bin:$PATH

VOLUME ["/models", "/data"]
EXPOSE 8080
ENTRYPOINT ["sharpeyes"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
