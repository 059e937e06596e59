# The one image for all of Hilum's Python processes (hilum serve|worker <stage>, serve cds|dicom|assembler, db ...);
# Triton's init container copies /opt/hilum/model_repository (with the demo cxr_findings model built) out of it.
# Base images are pinned to exact version tags here; the release pipeline pins them further by digest
# (python:3.11.14-slim-bookworm@sha256:...), so a rebuild can never pick up a different base silently.

# --- build: the runtime virtualenv (the project's runtime dependencies only, no dev or models extras) ---
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/hilum/venv/bin:$PATH

RUN python -m venv /opt/hilum/venv

WORKDIR /src
# README.md is the distribution's readme (pyproject: readme = "README.md"): the build needs it.
COPY pyproject.toml README.md ./
COPY services/ services/
RUN pip install --no-cache-dir .

# --- models: the demo cxr_findings ONNX model, exported with torch; torch stays in this stage ---
FROM build AS models

# The `models` extra (torch, onnx), with torch's CPU build: no CUDA wheels are needed to export a model.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch>=2.3,<3" \
    && pip install --no-cache-dir "onnx>=1.16,<2"

COPY model_repository/ /opt/hilum/model_repository/
# Writes cxr_findings/1/model.onnx and weights.json (seeded demo weights, version demo-untrained).
RUN HILUM_TRITON__MODEL_REPOSITORY=/opt/hilum/model_repository hilum models demo

# --- runtime: slim base, the venv and the model repository; non-root, read-only root filesystem friendly ---
FROM python:3.11.14-slim-bookworm AS runtime

# The repository behind the chart's default image (ghcr.io/hilum-health/hilum); the release pipeline may override it.
ARG SOURCE_URL=https://github.com/hilum-health/hilum
LABEL org.opencontainers.image.title="hilum" \
      org.opencontainers.image.description="FHIR-native clinical decision support for chest radiographs" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/hilum/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HILUM_TRITON__MODEL_REPOSITORY=/opt/hilum/model_repository \
    HILUM_STORAGE__DATA_DIR=/var/lib/hilum/data \
    HILUM_STORAGE__OUTPUT_DIR=/var/lib/hilum/out \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=67108864 \
    MALLOC_TRIM_THRESHOLD_=134217728

# Fixed numeric UID/GID so Kubernetes' runAsUser/fsGroup match the image. Only /var/lib/hilum (and the
# world-writable /tmp) are written at run time; everything else may be mounted read-only.
RUN groupadd --system --gid 10001 hilum \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hilum --no-create-home \
       --shell /usr/sbin/nologin hilum \
    && mkdir -p /var/lib/hilum/data /var/lib/hilum/out \
    && chown -R 10001:10001 /var/lib/hilum

# Root-owned and read-only for the service user: code and models are never changed in place.
COPY --from=build /opt/hilum/venv /opt/hilum/venv
COPY --from=models /opt/hilum/model_repository /opt/hilum/model_repository

WORKDIR /opt/hilum
USER 10001:10001

# gRPC stages (ingestion, inference, priors, reporting, publishing), CDS Hooks / FHIR API / STOW-RS HTTP,
# the DICOM SCP, Prometheus metrics.
EXPOSE 50051-50055 8080 11112 9090

ENTRYPOINT ["hilum"]
