# `make run`: set up and train the quickstart experiment; `make test`: run the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= data

.PHONY: run test data bench figures reproduce postgres clean-venv

# The core (requirements.txt) trains; each other use adds its own file (see requirements.txt's header).
$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11 or newer needed; use make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-figures: $(VENV)/.installed requirements-figures.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-figures.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-search.txt requirements-figures.txt \
		requirements-datasets.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

data: $(VENV)/.installed
	$(PY) -m funcs.data fetch mnist --data_dir $(DATA_DIR)

run: data
	$(PY) -m bp.main --json_path configFile/quickstart --set data_dir=$(DATA_DIR)

# The distributed search tests start a throwaway PostgreSQL server: as root, install Debian's package where its
# binaries are missing; otherwise those tests are skipped and say why.
postgres:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing postgresql (server for the distributed search tests)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null || \
	    { apt-get update >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null; }; \
	  else \
	    echo "note: no PostgreSQL server (initdb); the distributed search tests will be skipped"; \
	  fi; \
	fi

test: $(VENV)/.installed-test postgres
	$(PY) -m pytest -q --durations=8 tests

# The paper's figures and tables from simuResults/ (reproduce_figures.ipynb, headless): PNGs into figuresPlot/.
figures: $(VENV)/.installed-figures
	$(PY) -m funcs.figures notebook

# The experiments behind every figure and table at full length (funcs/reproduce.py), resumable: each call continues
# where the last stopped. Options through ARGS, e.g. make reproduce ARGS="--dry-run" or ARGS="--only 'semi_*' --jobs 2".
reproduce: data $(VENV)/.installed-figures
	$(PY) -m funcs.reproduce $(ARGS)

bench: $(VENV)/.installed
	$(PY) -m bench.bp_throughput --data_dir $(DATA_DIR)

clean-venv:
	rm -rf $(VENV)
