# Quick start: `make demo` and `make test`. Each sets up .venv (and the Debian packages) when missing.
PY := .venv/bin/python
PYTEST_ARGS ?=
# passed on to the demo's train.py, e.g. make demo DEMO_ARGS="--device=cuda --batch_size=32"
DEMO_ARGS ?=

.PHONY: setup test lint demo bench clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m ruff check .
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The code is formatted by hand to ruff's lint rules (line length 100), not by `ruff format`.
lint: setup
	$(PY) -m ruff check .

demo: setup
	@if [ -f recipes/GASS/separation/demo.sh ]; then bash recipes/GASS/separation/demo.sh $(DEMO_ARGS); \
	else echo "make demo: not yet available (lands with the GASS recipe)"; fi

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .venv .pytest_cache .ruff_cache *.egg-info
