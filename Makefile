# Explainable Uncertainty: the two commands are `make book` and `make test`.
# Both create the virtual environment on first use and reuse it while pyproject.toml is unchanged.

PROFILE ?= cpu
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.ualib-installed

# Data: the data root is ./data; an offline mirror beside the checkout is used when present.
export UALIB_DATA ?= $(CURDIR)/data
ifneq ($(wildcard ../shared/data/SHA256SUMS),)
export UALIB_DATA_MIRROR ?= $(abspath ../shared/data)
endif
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: book pdf test lint env reference chapter assets clean-book help bench
.DEFAULT_GOAL := help

help:
	@echo "make book [PROFILE=tiny|cpu|gpu]   run every chapter notebook and build the HTML book (default PROFILE=cpu)"
	@echo "make pdf [PROFILE=...]              make book, then print it to _build/pdf/book.pdf in headless Chromium"
	@echo "make test                          run the linter and the whole test suite"
	@echo "make reference                     regenerate the tiny reference results (tests/reference/tiny) that make test compares with"
	@echo "make lint                          ruff: lint and format check (ruff format . formats)"
	@echo "make chapter NB=01_uncertainty_basics [PROFILE=...]   run one chapter notebook"
	@echo "make bench                         time ualib against its peers (needs the bench extra: pip install '.[bench]')"
	@echo "make assets                        install the book's MathJax from book/package-lock.json (make book does it when needed)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[book,test,bench]"
	@touch $(STAMP)

env: $(STAMP)

# chapters whose notebook, parameters and ualib sources are unchanged are reused; FORCE=1 re-runs them.
# The HTML works offline: MathJax is installed by `npm ci` into book/node_modules when the lock changed,
# and every page is then opened in headless Chromium (when installed); screenshots in _build/screenshots/.
# Generated pages are rewritten only when their content changes, and a page whose HTML and assets are
# unchanged since its last clean check is not reopened: a rebuild with nothing changed takes seconds.
book: $(STAMP)
	$(PY) -m compendium.book build --profile $(PROFILE) $(if $(FORCE),--force)

# the PDF: every page of the HTML book, in _toc.yml's order, printed by headless Chromium once MathJax
# has typeset it (compendium/pdf.py), joined into one file with a bookmark per page; its summary lists any
# table, equation or output wider than the paper (cut off there, since paper cannot scroll)
pdf: book
	$(PY) -m compendium.pdf --html _build/html --out _build/pdf/book.pdf

chapter: $(STAMP)
	$(PY) -m compendium.book run --profile $(PROFILE) --chapter $(NB) --force

assets: $(STAMP)
	$(PY) -m compendium.book assets

# lint: ruff (configured in pyproject.toml) checks the code and that it is formatted; make test runs it first
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

# the benchmark suite against Captum, pytorch-grad-cam, Opacus, torch.func, lime, scikit-learn, torchmetrics;
# writes benchmarks/results/<machine>.json, which the book's appendix plots
# the tiny reference that `make test` compares every tiny run with (within compendium/tolerances.yml):
# every chapter executed with its tiny defaults on this machine, results into tests/reference/tiny/, then
# rerun with seeds 1-3 to measure how far each number moves with another seed (a rerun on another CPU
# behaves like one): tests/reference/tiny.seed-spread.json, which widens the tolerances where needed
SPREAD_SEEDS := 1 2 3
SPREAD_TMP   := _build/seed-spread
reference: $(STAMP)
	rm -rf tests/reference/tiny $(SPREAD_TMP)
	UALIB_RESULTS=$(CURDIR)/tests/reference $(PY) -m compendium.book run --profile tiny --force
	for s in $(SPREAD_SEEDS); do \
	  UALIB_RESULTS=$(CURDIR)/$(SPREAD_TMP)/seed$$s $(PY) -m compendium.book run --profile tiny --seed $$s \
	    --output-dir $(SPREAD_TMP)/seed$$s/notebooks || exit 1; \
	done
	$(PY) -m compendium.reproduce --profile tiny --write-spread $(foreach s,$(SPREAD_SEEDS),$(s)=$(SPREAD_TMP)/seed$(s))

bench: $(STAMP)
	$(PY) -m benchmarks

clean-book:
	rm -rf _build book/chapters
