# Dense-landmark face suite. `make help` lists the targets.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp

# Knobs passed through to Hydra (empty = the config's default).
MODEL      ?=
DATA       ?=
TRAINER    ?=
LOGGER     ?=
EXPERIMENT ?=
DEBUG      ?=
DEVICES    ?=
ARGS       ?=
CKPT       ?=
HYDRA_ARGS = $(if $(MODEL),model=$(MODEL)) $(if $(DATA),data=$(DATA)) $(if $(TRAINER),trainer=$(TRAINER)) \
             $(if $(LOGGER),logger=$(LOGGER)) $(if $(EXPERIMENT),experiment=$(EXPERIMENT)) \
             $(if $(DEBUG),debug=$(DEBUG)) $(if $(DEVICES),trainer.devices=$(DEVICES)) $(ARGS)

.DEFAULT_GOAL := help
.PHONY: help install test test-fast lint format train eval models sync clean \
        facemodels pictures realism mean-landmarks data check-data fit predict lift pretrained sweep reproduce bench gpu-check

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/install.sh
	@bash scripts/install.sh

install: ## create .venv and install everything (idempotent; seconds when nothing changed)
	@bash scripts/install.sh

test: $(STAMP) ## the layer contracts, then the whole test suite (what CI runs)
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q

test-fast: $(STAMP) ## the tests without the slow ones
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff check + the layer contracts (lint-imports, pyproject.toml [tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP) ## ruff format + autofix
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

train: $(STAMP) ## train: make train MODEL=resll_convnext [DATA= TRAINER= LOGGER= EXPERIMENT= DEBUG= DEVICES= ARGS="hydra overrides"]
	$(PY) -m experiments.train $(HYDRA_ARGS)

eval: $(STAMP) ## evaluate a checkpoint: make eval CKPT=path.ckpt [DATA=...]
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=path/to.ckpt [DATA=...]"; exit 2; }
	$(PY) -m experiments.evaluate ckpt_path=$(abspath $(CKPT)) $(HYDRA_ARGS)

models: $(STAMP) ## list the model configs (MODEL=...)
	@$(PY) -m experiments.list_configs model

sync: ## upload offline W&B runs (after a run without network or API key)
	@ls -d logs/*/runs/*/wandb/offline-run-* wandb/offline-run-* 2>/dev/null | xargs -r -n1 $(VENV)/bin/wandb sync \
	  || echo "no offline W&B runs found"

clean: ## remove caches (keeps .venv, data/ and logs/)
	rm -rf .pytest_cache .ruff_cache **/__pycache__

# --- procedural world ---------------------------------------------------------------------------
OUT ?=
N   ?=
DATASET ?=
DIR ?=

facemodels: $(STAMP) ## write the procedural FLAME-format folder and BFM files: make facemodels OUT=dir
	@test -n "$(OUT)" || { echo "usage: make facemodels OUT=dir"; exit 2; }
	$(PY) -m experiments.world facemodels --out $(OUT)

pictures: $(STAMP) ## re-draw the README pictures (contact sheet, mean head) into docs/images
	$(PY) -m experiments.pictures --out docs/images

realism: $(STAMP) ## the procedural faces beside published anthropometry: docs/realism.md (table, plot, mean face, identities)
	$(PY) -m experiments.reports.realism --out docs/realism.md

mean-landmarks: $(STAMP) ## the mean face's iBUG-68 landmarks (68,3) metres: make mean-landmarks OUT=file.npy
	@test -n "$(OUT)" || { echo "usage: make mean-landmarks OUT=file.npy"; exit 2; }
	$(PY) -m experiments.world mean-landmarks --out $(OUT)

data: $(STAMP) ## write a procedural dataset in a real format: make data DATASET=dad3dheads OUT=dir N=100
	@test -n "$(DATASET)" -a -n "$(OUT)" || { echo "usage: make data DATASET=$$($(PY) -m experiments.data names --can write --sep '|') OUT=dir [N=...]"; exit 2; }
	$(PY) -m experiments.data write --dataset $(DATASET) --out $(OUT) $(if $(N),--n $(N))

check-data: $(STAMP) ## report every problem in a dataset folder: make check-data DATASET=... DIR=...
	@test -n "$(DATASET)" -a -n "$(DIR)" || { echo "usage: make check-data DATASET=$$($(PY) -m experiments.data names --can check --sep '|') DIR=dir"; exit 2; }
	$(PY) -m experiments.data check --dataset $(DATASET) --dir $(DIR)

# --- fitting and inference ----------------------------------------------------------------------
IMAGES ?=
INPUT  ?=
OUTPUT ?=
METHOD ?=

fit: $(STAMP) ## predict landmarks on a split, fit FLAME, evaluate: make fit CKPT=... [DATA=...]
	@test -n "$(CKPT)" || { echo "usage: make fit CKPT=path.ckpt [DATA=...]"; exit 2; }
	$(PY) -m experiments.fit ckpt_path=$(abspath $(CKPT)) $(HYDRA_ARGS)

predict: $(STAMP) ## photos / folders / videos -> every face's landmarks, FLAME mesh, overlays: make predict CKPT=... IMAGES=... OUT=dir
	@test -n "$(CKPT)" -a -n "$(IMAGES)" -a -n "$(OUT)" || { echo "usage: make predict CKPT=... IMAGES=photo_folder_or_video OUT=dir [ARGS=\"--faces whole --every 5 ...\"]"; exit 2; }
	$(PY) -m experiments.predict --ckpt $(CKPT) --images $(IMAGES) --out $(OUT) $(ARGS)

lift: $(STAMP) ## 2D iBUG-68 px (N,68,2) -> 3D (N,68,3): make lift INPUT=in.npy OUTPUT=out.npy [CKPT=... | METHOD=meanshape]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make lift INPUT=in.npy OUTPUT=out.npy [CKPT=... | METHOD=meanshape] (no CKPT: the shipped Zhao weights)"; exit 2; }
	$(PY) -m experiments.lift $(if $(CKPT),--ckpt $(CKPT)) $(if $(METHOD),--method $(METHOD)) --input $(INPUT) --output $(OUTPUT)

pretrained: $(STAMP) ## retrain + export the shipped Zhao weights (experiments/weights/; measured 12 min on a 2-core CPU)
	$(PY) -m experiments.pretrained train zhao_depth_ibug68

# --- experiments at scale -----------------------------------------------------------------------
SWEEP ?=
TABLE ?=
SCALE ?= quick
BENCH ?=

sweep: $(STAMP) ## W&B sweep (offline: the same grid as a Hydra multirun): make sweep SWEEP=name
	@test -n "$(SWEEP)" || { echo "usage: make sweep SWEEP=name (see experiments/sweeps/)"; exit 2; }
	$(PY) -m experiments.sweep $(SWEEP)

reproduce: $(STAMP) ## run a paper's table and write its report: make reproduce TABLE=name SCALE=quick|full
	@test -n "$(TABLE)" || { echo "usage: make reproduce TABLE=name SCALE=quick|full"; exit 2; }
	$(PY) -m experiments.reproduce $(TABLE) --scale $(SCALE)

bench: $(STAMP) ## run the benchmarks and write BENCHMARKS.md (BENCH=name runs one; THREADS=1 on a shared machine)
	$(PY) -m benchmarks.run $(if $(BENCH),--only $(BENCH)) $(if $(THREADS),--threads $(THREADS))

gpu-check: ## the prepared device check (issue 19; < 8 min on one H200): make gpu-check OUT=dir [SMOKE=1 PACK=1]
	@test -n "$(OUT)" || { echo "usage: make gpu-check OUT=dir [SMOKE=1] [PACK=1] (PY=python3 on the device)"; exit 2; }
	PY=$(PY) bash scripts/gpu_check.sh $(OUT) $(if $(SMOKE),--smoke) $(if $(PACK),--pack)
