# The two commands a new user needs: `make demo` and `make test`. Both set up everything first.
SHELL := /bin/bash
# Offline data shipped beside the checkout; otherwise `make demo` downloads CIFAR-10 into
# ~/.cache/grader/data with `grader fetch-data` (needs internet).
SHARED_DATA := $(abspath ../shared/data)
export GRADER_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow test-gpu test-all lint bench baselines

setup:
	@bash scripts/setup.sh

demo: setup
	$(if $(GRADER_DATA_DIR),,uv run grader fetch-data cifar10)
	uv run grader check submissions/cifar10 --out out/demo/cifar10
	uv run grader check submissions/simplenn --assignment simplenn --out out/demo/simplenn
	uv run grader check submissions/lenet-mnist --assignment lenet-mnist --out out/demo/lenet-mnist
	uv run grader sanity submissions/vu-autograd/alex/ops.py --assignment vu-autograd
	@printf 'student,name\nalice,Alice Martin\nbob,Bob Chen\ncarol,Carol Diaz\n' > out/demo/roster.csv
	@echo
	@echo "Demo done. Open the reports (and each student's page under students/) in a browser:"
	@echo "  file://$(CURDIR)/out/demo/cifar10/report.html"
	@echo "  file://$(CURDIR)/out/demo/simplenn/report.html"
	@echo "  file://$(CURDIR)/out/demo/lenet-mnist/report.html"
	@echo "Start the course board, then open http://127.0.0.1:8000/ (Ctrl-C stops it):"
	$(if $(GRADER_DATA_DIR),@echo "  export GRADER_DATA_DIR=$(GRADER_DATA_DIR)    # the data the demo used",)
	@echo "  uv run grader roster import out/demo/roster.csv    # prints each student's token, once"
	@echo "  uv run grader serve --assignment cifar10 --assignment simplenn --port 8000"
	@echo "  uv run grader worker        # in a second terminal: grades uploaded models"
	@echo "Every grader command runs as 'uv run grader ...', or as 'grader ...' after 'source .venv/bin/activate'."

test: setup
	uv run pytest $(PYTEST_ARGS)

test-slow: setup
	uv run pytest -m slow $(PYTEST_ARGS)

test-gpu: setup
	uv run pytest -m gpu $(PYTEST_ARGS)

test-all: setup
	uv run pytest -m "slow or not slow" $(PYTEST_ARGS)

lint: setup
	uv run ruff check .
	uv run ruff format --check .

bench: setup
	for script in benchmarks/bench_*.py; do uv run python "$$script" || exit 1; done

# Reference baselines; on a machine with the full data set this is the full-data run.
baselines: setup
	OMP_NUM_THREADS=1 uv run grader train --all-baselines
