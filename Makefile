# Set-up is part of every target: .venv is created with python3.10 and the pinned TFX stack
# (constraints.txt) is installed the first time, then reused; the project is installed into it
# editable, its C extensions (VocabularyGen's word counter and example reader) compiled then,
# again if their source changes.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STACK := $(VENV)/.installed-$(shell cat setup.py constraints.txt | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.compiled
PYTHON310 := $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0

.PHONY: demo demo-retrain demo-kfp demo-portable demo-flink demo-airflow flink-jars test test-fast test-random lint sample clean venv wheel image kfp-sdk bench-restore bench-ingest bench-warmstart bench-vocab bench-pipeline bench-flink bench-schedule

venv: $(STAMP)

$(STACK):
	@test -n "$(PYTHON310)" || { echo "error: python3.10 not found; the TFX 1.16 stack needs it"; exit 1; }
	@echo "Creating $(VENV) with $(PYTHON310) and the pinned TFX stack (a few minutes, once)"
	rm -rf $(VENV)
	$(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3 setuptools==69.5.1 wheel==0.48.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# The project again (no dependencies) when its C source changes: the extension is recompiled.
$(STAMP): $(STACK) $(wildcard components/vocabulary_gen/*.c)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The main job on the shipped sample: local runner, SQLite metadata, Beam DirectRunner.
demo: $(STAMP)
	$(PY) -m tfx_embeddings.pipeline run --config configs/demo.yaml

# Scheduled retraining: two runs, the second on a changed corpus, warm-started from the first.
demo-retrain: $(STAMP)
	$(PY) -m tfx_embeddings.pipeline.demo.retrain --config configs/demo.yaml

# Scheduled runs driven by Apache Airflow 2.x's scheduler (SQLite metadata, its own process), in
# a virtualenv of its own (airflow-requirements.txt: it does not install beside the pinned
# stack): the DAG runs the pipeline every minute through the CLI with the project's interpreter.
# The scheduler triggers two runs with new rows between them, then a third while a run started
# by hand holds the pipeline's lock; prints the runs as Airflow records them, stops every
# process it started. About 10 minutes (docs/scheduling.md).
AIRFLOW_VENV := build/airflow/venv
$(AIRFLOW_VENV)/.installed: airflow-requirements.txt
	@test -n "$(PYTHON310)" || { echo "error: python3.10 not found"; exit 1; }
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON310) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip==26.3 setuptools==69.5.1 wheel==0.48.0
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r airflow-requirements.txt
	touch $@

demo-airflow: $(STAMP) $(AIRFLOW_VENV)/.installed
	$(PY) -m tfx_embeddings.pipeline.demo.airflow --config configs/demo.yaml --airflow $(AIRFLOW_VENV)

# The wheel, and a stand-in for the container image: a fresh virtualenv where only the wheel is
# installed (the pinned stack is linked in from .venv, not copied: a full install takes minutes).
# Code that only works from the checkout fails there.
WHEEL_DIR := build/dist
IMAGE := build/image
SITE_PACKAGES = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

wheel: $(STAMP)
	rm -rf $(WHEEL_DIR) build/lib build/bdist*
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir $(WHEEL_DIR) .
	rm -rf build/lib build/bdist*

image: wheel
	rm -rf $(IMAGE)
	$(PYTHON310) -m venv $(IMAGE)
	echo "$(SITE_PACKAGES)" > $(IMAGE)/lib/python3.10/site-packages/pinned-stack.pth
	$(IMAGE)/bin/python -m pip install --quiet --no-deps --ignore-installed --no-index $(WHEEL_DIR)/*.whl

# Scheduled retraining on open-source Kubeflow Pipelines, without a cluster: the pipeline compiled
# for it (compile --target kubeflow) and run twice by run-spec, as the open-source backend runs
# a spec (its checks, ML Metadata served over gRPC, its cache key), with new train rows added
# between the runs; all from the image stand-in (only the wheel installed), in a directory
# outside the checkout. Prints what shows that run 2 read the new rows, warm-started from run 1's
# blessed model and was evaluated against it, then scores raw strings with the pushed model.
KFP := $(CURDIR)/build/kfp
IMAGE_PY := $(CURDIR)/$(IMAGE)/bin/python
demo-kfp: image
	cd $$(mktemp -d) && TF_USE_LEGACY_KERAS=1 $(IMAGE_PY) -m tfx_embeddings.pipeline.demo.kubeflow \
	    --config $(CURDIR)/configs/kubeflow-local.yaml --sample $(CURDIR)/data/sample \
	    --work $(KFP) --python $(IMAGE_PY)

# The kfp SDK 2.x (not installable with the pinned stack: see tests/kfp-sdk-requirements.txt), in
# a virtualenv of its own; the tests load the open-source spec with it.
KFP_SDK := build/kfp-sdk
$(KFP_SDK)/.installed: tests/kfp-sdk-requirements.txt
	@test -n "$(PYTHON310)" || { echo "error: python3.10 not found"; exit 1; }
	rm -rf $(KFP_SDK)
	$(PYTHON310) -m venv $(KFP_SDK)
	$(KFP_SDK)/bin/python -m pip install --quiet --upgrade pip==26.3 setuptools==69.5.1 wheel==0.48.0
	$(KFP_SDK)/bin/python -m pip install --quiet -r tests/kfp-sdk-requirements.txt
	touch $@
kfp-sdk: $(KFP_SDK)/.installed

# The Beam steps on Beam's portable runner (a job service and an external worker pool, each in a
# process of its own), then on the local runner; the vocabulary and checkpoint files must match.
demo-portable: $(STAMP)
	$(PY) -m tfx_embeddings.pipeline.demo.portable --config configs/demo.yaml

# The Beam steps on a real Apache Flink cluster started here (a JobManager and 2 TaskManagers,
# each a java process, and Beam's Flink job server), as configs/flink.yaml says; then the
# vocabulary and checkpoint bytes compared with a local-runner run; everything stopped at the
# end. The jars are built once with Maven (flink-jars: about 5 minutes the first time) into
# ~/.cache/tfx-embeddings/flink.
demo-flink: $(STAMP)
	$(PY) -m tfx_embeddings.pipeline.demo.flink --config configs/flink.yaml

flink-jars: $(STAMP)
	$(PY) -m tfx_embeddings.pipeline.flink build

# The checks, then every test, in two worker processes (pytest-xdist; a module's tests, and those
# reading the session's history, in one worker): what CI runs. The image stand-in, the kfp SDK's
# virtualenv and the Flink jars are built here, before the tests (each once; the tests use them).
test: lint image kfp-sdk flink-jars
	$(PY) -m pytest tests -v --durations=20 -n 2 --dist loadfile -p randomly \
	    --randomly-dont-reorganize

# The tests that run no pipeline, start no cluster and kill no job (pytest.ini's markers).
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not pipeline and not cluster and not slow" -n 2 --dist loadfile \
	    -p randomly --randomly-dont-reorganize

# Every test in a random order (the seed is printed; --randomly-seed=N repeats an order).
test-random: lint image kfp-sdk flink-jars
	$(PY) -m pytest tests -n 2 --dist loadfile -p randomly

# ruff (ruff.toml), the layering (.importlinter) and every import resolved (pyrightconfig.json).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/basedpyright

# Benchmarks: each writes benchmarks/results/<name>.json and prints its table.
bench-restore: $(STAMP)
	$(PY) -m benchmarks.bench_restore

# The vocabulary benchmark: the project's Beam vocabulary vs tft.vocabulary, Keras adapt and a
# Counter on a generated 100k-document corpus (benchmarks/work/), then the project and tft on 1M
# documents; writes
# benchmarks/results/vocab.json. Several minutes; run it on an otherwise idle machine.
bench-vocab: $(STAMP)
	$(PY) benchmarks/bench_vocab.py

# Regenerates the shipped sample (deterministic: the same files every time).
sample: $(STAMP)
	$(PY) -m tfx_embeddings.pipeline.demo.sample_data --out data/sample

# Ingest benchmark: EmbeddingGen against gensim, the TF-Hub loop and pandas on a generated 1 GB
# GloVe file (benchmarks/work/, generated once); writes benchmarks/results/ingest.json.
bench-ingest: $(STAMP)
	$(PY) -m benchmarks.bench_ingest

bench-warmstart: $(STAMP)
	$(PY) -m benchmarks.bench_warmstart

# EmbeddingGen on the ingest benchmark's 400,000 x 300 file (generated once if missing) on the
# local runner, then on a Flink cluster started here with 1 and with 2 TaskManagers: seconds and
# each TaskManager's peak RSS; writes benchmarks/results/flink.json. Run it on an idle machine.
bench-flink: $(STAMP)
	$(PY) -m benchmarks.bench_flink

# The whole pipeline, the project's against the usual way, on an IMDB-sized generated corpus and
# a 400,000 x 300 vector file; per component seconds and peak RSS, and the trainer's step time.
# About half an hour (the usual way's trainer is most of it); run it on an idle machine.
bench-pipeline: $(STAMP)
	$(PY) -m benchmarks.bench_pipeline

# A long schedule simulated: 100 runs of the demo pipeline (a small corpus, 2 epochs) back to
# back, each in a new process as a scheduler starts it, new rows before each, retention keeping
# 3 runs; per run seconds, disk under the pipeline root, in serving and in the temporary
# directory, ML Metadata's size, open files and child processes left, the run's memory, and the
# slopes after the retention window; writes benchmarks/results/schedule.json. About two hours;
# run it on an idle machine. RUNS=20 for less; SCHEDULE_ARGS=--in-process for all runs in one
# process (benchmarks/results/schedule-in-process.json).
RUNS ?= 100
bench-schedule: $(STAMP)
	$(PY) -m benchmarks.bench_schedule --runs $(RUNS) $(SCHEDULE_ARGS)

clean:
	rm -rf build
