# The project's commands; CI (.ci/run) calls `lint` and `test`.
CARGO ?= cargo

.PHONY: setup run test lint fmt bench

# Toolchain pieces a fresh machine lacks: the wasm target plugins build for, and the linters.
setup:
	rustup target add wasm32-wasip2
	rustup component add rustfmt clippy

# Start the server in development mode: demo tenant, demo documents, 127.0.0.1:8080.
run: setup
	$(CARGO) run --release -p bulkhost-server -- serve --dev

# Every test of the workspace: unit, integration over HTTP, property and crash tests.
test: setup
	$(CARGO) test --workspace --all-targets

# Formatting and lints, as CI enforces them.
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The benchmark harness (release build); figures go to BENCHMARKS.md.
bench: setup
	$(CARGO) run --release -p bulkhost-bench
