#!/usr/bin/env bash
# One-command install: a virtual environment in the checkout (.venv) with everything the suite needs.
#
# Handles the traps measured on Debian 12 / Python 3.11:
#   - theseus-ai is an sdist that needs torch at build time: install torch first, then theseus-ai
#     with --no-build-isolation.
#   - theseus-ai needs scikit-sparse, which compiles against SuiteSparse headers (Debian:
#     libsuitesparse-dev). scikit-sparse 0.4.16 builds against Debian 12's SuiteSparse; 0.5.0 does not.
#   - timm imports torchvision: install the standard PyPI torch/torchvision pair together (a CUDA build
#     that runs fine on CPU); a +cpu torch wheel next to PyPI's torchvision fails to import.
#
# Idempotent: a stamp records a hash of this script and pyproject.toml; when nothing changed and the
# environment imports, it returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# The tested pair; override with e.g. TORCH_SPEC="torch==2.11.0 torchvision==0.26.0".
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.2"}
STAMP="$VENV/.install-stamp"
want=$(cat scripts/install.sh pyproject.toml | sha256sum | cut -c1-16)

say() { printf '[install] %s\n' "$*"; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && \
   "$VENV/bin/python" -c "import torch, theseus, smplx, timm, pytorch_lightning, hydra, facenet_pytorch, facemodels" 2>/dev/null; then
  say "environment up to date ($VENV)"
  exit 0
fi

# --- Python ---------------------------------------------------------------------------------------
if ! command -v "$PYTHON" >/dev/null; then
  say "ERROR: $PYTHON not found. Install Python >= 3.10 with venv and headers (Debian: apt-get install python3 python3-venv python3-dev)."
  exit 1
fi
"$PYTHON" - <<'EOF' || { say "ERROR: Python >= 3.10 is required (found $($PYTHON --version))."; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)
EOF

# --- SuiteSparse headers (for scikit-sparse, needed by theseus-ai) ---------------------------------
have_suitesparse() {
  for d in /usr/include/suitesparse /usr/local/include/suitesparse /usr/include "${CONDA_PREFIX:-/nonexistent}/include"; do
    [ -f "$d/cholmod.h" ] && return 0
  done
  return 1
}
if ! have_suitesparse; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    say "installing SuiteSparse headers (apt-get install libsuitesparse-dev)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsuitesparse-dev >/dev/null
  else
    cat <<'MSG'
[install] ERROR: SuiteSparse headers (cholmod.h) are missing; theseus-ai needs scikit-sparse, which compiles
          against them, and this script cannot install system packages here (not root or no apt-get).
          Install them, then run `make install` again:
            Debian/Ubuntu:  sudo apt-get install libsuitesparse-dev
            Fedora/RHEL:    sudo dnf install suitesparse-devel
            macOS:          brew install suite-sparse
            conda:          conda install -c conda-forge suitesparse
MSG
    exit 1
  fi
fi
command -v gcc >/dev/null || command -v cc >/dev/null || {
  say "ERROR: a C compiler is needed to build scikit-sparse (Debian: apt-get install build-essential python3-dev)."; exit 1; }

# --- disk space ------------------------------------------------------------------------------------
# Measured on a fresh clone (venv and pip's temp folder on one disk): the install takes 6.3 GB at its
# peak, torch with its CUDA libraries being most of it. No pip cache is kept (--no-cache-dir): on a fresh
# machine such as CI it would hold ~3 GB of wheels for nothing (a CI run ran out of disk installing torch).
free_gb() { df -Pk "$1" 2>/dev/null | awk 'NR==2 {printf "%.1f", $4 / 1048576}'; }
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  mkdir -p "$(dirname "$VENV")"; venv_parent=$(dirname "$(readlink -f "$VENV")"); free=$(free_gb "$venv_parent")
  say "free disk: $free GB for $VENV, $(free_gb "${TMPDIR:-/tmp}") GB for pip's temp folder (needs ~6.5 GB)"
  if awk -v v="$free" 'BEGIN {exit !(v + 0 < 6.5)}'; then
    say "ERROR: only $free GB free in $venv_parent, where $VENV goes; the install needs ~6.5 GB"
    say "       (torch and its CUDA libraries). Free some space, or set VENV=/a/path/on/a/larger/disk."
    exit 1
  fi
fi

# --- virtual environment ---------------------------------------------------------------------------
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir)

say "torch + torchvision ($TORCH_SPEC)"
# shellcheck disable=SC2086
"${PIP[@]}" $TORCH_SPEC

say "build tools and scikit-sparse 0.4.16 (against the system SuiteSparse)"
"${PIP[@]}" "setuptools>=64" wheel "cython>=3.0,<3.1" "numpy>=1.24" "scipy>=1.10"
"$VENV/bin/python" -c "import sksparse" 2>/dev/null || "${PIP[@]}" --no-build-isolation "scikit-sparse==0.4.16"

say "theseus-ai (built against the installed torch, no build isolation)"
"$VENV/bin/python" -c "import theseus" 2>/dev/null || "${PIP[@]}" --no-build-isolation "theseus-ai>=0.2.2"

say "the suite and its dependencies (editable, with dev extras)"
"${PIP[@]}" --no-build-isolation -e ".[dev]"

# facenet-pytorch (the MTCNN face detector of `make predict`; its three networks ship in the wheel) pins
# torch<2.3 in its metadata, yet runs with ours (tests/harness/test_face_detection.py): no dependencies.
say "facenet-pytorch 2.6.0 without its dependencies (the face detector)"
"$VENV/bin/python" -c "import facenet_pytorch" 2>/dev/null || "${PIP[@]}" --no-deps "facenet-pytorch==2.6.0"

"$VENV/bin/python" -c "import torch, torchvision, timm, theseus, smplx, roma, normflows, pytorch_lightning, hydra, wandb, facenet_pytorch, av; \
print('[install] ok: torch', torch.__version__, '| cuda available:', torch.cuda.is_available())"
echo "$want" > "$STAMP"
