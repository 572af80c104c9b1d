# The two commands of the README, plus the benchmarks.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

.PHONY: run test setup lint bench-encoder bench-edge bench-upload bench-jit bench-protection bench-abuse bench-origin-load bench-network bench-hit-ratio

setup:
	@scripts/setup.sh

## run: the origin and one edge PoP on embedded defaults in ./data, with a generated sample uploaded through the PoP
run: setup
	$(CARGO) build --release -p origin -p encoder -p edge
	@scripts/run.sh

## test: formatting, lints and every test of the workspace
# One clean build, not a session of edits: incremental state would only take disk space (GiBs).
test lint: export CARGO_INCREMENTAL ?= 0
test: setup lint
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# Without its `workers` feature the origin is a pure API server that links no FFmpeg.
	$(CARGO) clippy -p origin --no-default-features -- -D warnings

## bench-encoder: our encoder against one ffmpeg CLI process, same ladder (see bench/README.md)
bench-encoder: setup
	$(CARGO) build --release -p encoder
	bench/encoder-vs-ffmpeg/run.py

## bench-edge: the edge's memory tier against nginx (sendfile), HTTPS and HTTP, driven by wrk and by loadtest, and its cold-miss TTFB against Varnish
bench-edge: setup
	$(CARGO) build --release -p edge -p loadtest
	bench/edge-vs-nginx/run.py

## bench-upload: 1 GiB over loopback, plain request vs tus single stream vs 4 parallel partials
bench-upload: setup
	$(CARGO) bench -p origin --bench upload

## bench-jit: a cold just-in-time 720p segment through a PoP against the ffmpeg CLI making the same segment
bench-jit: setup
	$(CARGO) build --release -p origin -p edge
	bench/jit-vs-ffmpeg/run.py

## bench-protection: boxing one ladder clear, HLS AES-128 and CENC cbcs, per core, against OpenSSL's AES-128-CBC and the transcode's CPU
bench-protection: setup
	@mkdir -p bench/results
	$(CARGO) bench -p encoder --bench protection | tee bench/results/protection-$$(date +%F).json

## bench-origin-load: uploads and playback tokens against two origin API nodes, one SIGKILLed and restarted every 20 s (needs PostgreSQL and NATS)
bench-origin-load: setup
	$(CARGO) build --release -p origin
	bench/origin-load/run.py

## bench-abuse: slowloris, header floods, idle connections and cold ranges against a release PoP and origin on loopback, with viewers' latency meanwhile
bench-abuse: setup
	$(CARGO) build --release -p origin -p edge
	ulimit -n 65536 && bench/abuse/run.py

## bench-network: shields and content steering on the network test bed (origin, two regions of two PoPs and a shield, loadtest viewers; r1-pop-a killed in the last run; needs root)
bench-network: setup
	$(CARGO) build --release -p origin -p edge -p loadtest
	bench/network/run.py

## bench-hit-ratio: the PoP's byte hit ratio against LRU, S3-FIFO and Belady on each run's own trace (cache = 5% of the catalogue; Zipf 0.9 and 0.7; read-ahead off and on)
bench-hit-ratio: setup
	$(CARGO) build --release -p origin -p encoder -p edge -p loadtest
	bench/hit-ratio/run.py
