# The two commands a new user needs: `make demo` and `make test`. Both set up everything first.
SHELL := /bin/bash
# Offline data shipped beside the checkout; otherwise torchvision downloads into ~/.cache/grader/data.
SHARED_DATA := $(abspath ../shared/data)
export GRADER_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow test-gpu test-all lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	uv run grader check submissions/ --out out/demo
	@echo "report: $(CURDIR)/out/demo/report.html"

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
