# photolab: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# torch/torchvision: the builds this machine carries on disk; the same pins go to
# every pip call so no step can pull another build.
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv demo test lab bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[test,cluster]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/photolab demo --library demo-library

test: $(STAMP)
	$(PY) -m pytest -q

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --config=jupyter/jupyter_lab_config.py --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks

bench: $(STAMP)
	$(PY) benchmarks/bench_index.py
	$(PY) benchmarks/bench_tagging.py
	$(PY) benchmarks/bench_organize.py
	$(PY) benchmarks/bench_dedupe.py
	$(PY) benchmarks/bench_metadata.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_watch.py
	$(PY) benchmarks/bench_faces.py
	$(PY) benchmarks/bench_backup.py

clean:
	rm -rf $(VENV) demo-library
