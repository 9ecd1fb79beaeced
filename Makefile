# Convenience targets. Commands come from the active environment (PATH / `python`), so they work with any venv:
#   source .venv/bin/activate && make docs      or      make docs PYTHON=.venv/bin/python
# Quarto is not needed: `make docs` renders with nbdev's processors + execnb + nbconvert (see tools/build_docs.py).
# Where Quarto exists, `nbdev-docs` also works with nbs/_quarto.yml, nbs/nbdev.yml, nbs/sidebar.yml, nbs/styles.css.
PYTHON ?= python
WORKERS ?= 2
# nbdev's commands come with the [docs] extra (also in [dev]): say so in one line where they are missing
NBDEV = @command -v nbdev-export >/dev/null 2>&1 || { echo 'nbdev is not installed: pip install -e ".[docs]"' >&2; exit 2; };

.PHONY: all docs readme check-readme export test test-nbs clean

all: export docs readme

## docs: execute every nbs/*.ipynb and render browsable HTML into _docs/ (open _docs/index.html)
docs:
	$(PYTHON) tools/build_docs.py --workers $(WORKERS)

## readme: regenerate README.md (and index_files/ images, if any) from nbs/index.ipynb
readme:
	$(PYTHON) tools/build_docs.py --readme

## check-readme: fail if README.md is out of date with nbs/index.ipynb
check-readme:
	$(PYTHON) tools/build_docs.py --check-readme

## export: write the fastai_scaling package from the notebooks
export:
	$(NBDEV) nbdev-export

## test-nbs: run the notebooks as tests (nbdev-test)
test-nbs:
	$(NBDEV) nbdev-test --n-workers $(WORKERS)

## test: pytest suite (includes the docs build and the headless-chromium check)
test:
	$(PYTHON) -m pytest tests/

## clean: strip notebook metadata (nbdev-clean) and remove build outputs
clean:
	$(NBDEV) nbdev-clean
	rm -rf _docs _proc
