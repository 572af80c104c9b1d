# The two commands of the README, plus the benchmarks.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: run test setup lint bench-encoder bench-upload

setup:
	@scripts/setup.sh

## run: the origin on embedded defaults in ./data, with a generated sample ingested through the API
run: setup
	$(CARGO) build --release -p origin -p encoder
	@scripts/run.sh

## test: formatting, lints and every test of the workspace
test: setup lint
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench-encoder: our encoder against one ffmpeg CLI process, same ladder (see bench/README.md)
bench-encoder: setup
	$(CARGO) build --release -p encoder
	bench/encoder-vs-ffmpeg/run.py

## bench-upload: 1 GiB over loopback, plain request vs tus single stream vs 4 parallel partials
bench-upload: setup
	$(CARGO) bench -p origin --bench upload
