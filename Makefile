# Quick start: `make demo` and `make test`. Each sets up .venv (and the Debian packages) when missing.
PY := .venv/bin/python
PYTEST_ARGS ?=
# passed on to the demo's train.py, e.g. make demo DEMO_ARGS="--device=cuda --batch_size=32"
DEMO_ARGS ?=

.PHONY: setup test test-fast compat lint demo bench clean

setup:
	@bash tools/setup_env.sh

test: setup
	$(PY) -m ruff check .
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# For local work: ruff and the suite without the tests marked `slow` (torch.export traces, the
# recipes' debug runs, the wheel builds). CI (.ci/run) runs `make test`, which runs them all.
test-fast: setup
	$(PY) -m ruff check .
	@$(PY) -m pytest -m "not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The compatibility subset (tests marked `compat`: lobes, loss, mixer, from_hparams /
# separate_file, one recipe debug run) on the oldest versions setup.py declares: SpeechBrain
# 1.0.3 with torch/torchaudio 2.6.0 (requirements-compat.txt), a layer in front of the stack.
compat: setup
	@layer=$$(bash tools/setup_compat_env.sh) || exit 1; \
	PYTHONPATH="$$layer" $(PY) -m pytest -m compat $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make compat: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The code is formatted by hand to ruff's lint rules (line length 100), not by `ruff format`.
lint: setup
	$(PY) -m ruff check .

demo: setup
	@if [ -f recipes/GASS/separation/demo.sh ]; then bash recipes/GASS/separation/demo.sh $(DEMO_ARGS); \
	else echo "make demo: not yet available (lands with the GASS recipe)"; fi

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .venv .pytest_cache build dist .ruff_cache *.egg-info
