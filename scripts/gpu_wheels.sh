#!/usr/bin/env bash
# Build here, into .whl/ (git-ignored), the wheels the device check (scripts/gpu_check.sh) needs that
# the device image lacks (/work/.library/device/KINDS.md: python3.12, torch 2.11, torchvision, timm,
# lightning, torchmetrics, scipy, scikit-learn, pyyaml, requests, protobuf, ... and no registry).
# Versions: the ones the suite is tested with (the lead's .venv). One version of each, < 64 MiB.
#   bash scripts/gpu_wheels.sh            # then carry [".whl"] in the device tool's run
# Binary wheels are fetched for CPython 3.12 manylinux x86-64; the sdists (theseus-ai, antlr4,
# ...) are built here into pure-Python py3-none-any wheels (theseus-ai without its optional C++ /
# CUDA extensions: THESEUS_FORCE_CUDA=0 and no BASPACHO_ROOT_DIR). scikit-sparse is left out:
# it links SuiteSparse's libcholmod (no manylinux wheel) and Theseus imports without it (only
# its CHOLMOD sparse solver needs it; the fit uses the dense Cholesky solver).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
DEST=.whl
PINS=(
  # the suite's direct needs the image lacks
  theseus-ai==0.2.3 torchlie==0.1.0 torchkin==0.1.1 urdf-parser-py==0.0.4 semantic-version==2.10.0
  normflows==1.7.3 smplx==0.1.28 roma==1.8.0
  plyfile==1.1.5  # tests/fitting/test_mesh_io.py checks the suite's PLY files against it (pytest -m gpu collects it)
  facenet-pytorch==2.6.0  # make predict's face detector (weights in the wheel; installed --no-deps)
  hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
  # wandb (the default logger; the check itself logs to CSV) and what it needs beyond the image
  wandb==0.31.0 cwevals==0.0.1b1 distro==1.9.0 sniffio==1.3.1 platformdirs==4.14.9
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0
  opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-semantic-conventions==0.66b2
  opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-exporter-http-transport==0.66b2
  opentelemetry-exporter-otlp-common==0.66b2 opentelemetry-exporter-otlp-proto-common==1.45.2
  opentelemetry-proto==1.45.2 googleapis-common-protos==1.76.0
)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
           manylinux1_x86_64 manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64
           manylinux_2_35_x86_64)
mkdir -p "$DEST"
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || git check-ignore -q "$DEST" \
  || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
plat_args=(); for p in "${PLATFORMS[@]}"; do plat_args+=(--platform "$p"); done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for pin in "${PINS[@]}"; do
  name=${pin%%==*}; stem=$(echo "$name" | tr '-' '_')
  if ls "$DEST"/ 2>/dev/null | grep -qi "^${stem}-${pin##*==}-"; then continue; fi
  if $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
       "${plat_args[@]}" -d "$DEST" "$pin" 2>/dev/null; then
    continue
  fi
  # no wheel for 3.12 / manylinux: build the sdist into a pure-Python wheel here
  echo "building $pin from its sdist"
  THESEUS_FORCE_CUDA=0 $PY -m pip wheel -q --no-deps --no-build-isolation -w "$tmp" "$pin"
  built=$(ls "$tmp"/*.whl | head -1)
  case "$built" in
    *-py3-none-any.whl|*-py2.py3-none-any.whl) mv "$built" "$DEST"/ ;;
    *) echo "gpu_wheels: $pin built a platform wheel ($built), not usable on Python 3.12" >&2; exit 1 ;;
  esac
done
# exactly one version of each package (two stop the whole --no-index install there)
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dups" ] || { echo "gpu_wheels: more than one version of: $dups" >&2; exit 1; }
ls -l "$DEST"/*.whl | awk '{printf "%8.1f KiB  %s\n", $5 / 1024, $9}'
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
printf 'total %.1f MiB in %d wheels (limit 64 MiB with the working tree)\n' \
  "$(echo "$total / 1048576" | bc -l)" "$(ls "$DEST"/*.whl | wc -l)"
[ "$total" -lt $((60 * 1048576)) ] || { echo "gpu_wheels: over 60 MiB" >&2; exit 1; }
