# The project's commands; CI (.ci/run) calls `lint` and `test`.
CARGO ?= cargo
# The guest plugins are a workspace of their own (plugins/), built under the one target/ dir.
PLUGINS = CARGO_TARGET_DIR=target/plugins $(CARGO)
PLUGINS_MANIFEST = --manifest-path plugins/Cargo.toml

.PHONY: setup plugins run test lint fmt bench

# What a fresh machine lacks: the wasm target plugins build for, the linters, and the Python
# `requests` package the seed 000 client test runs with.
setup:
	rustup target add wasm32-wasip2
	rustup component add rustfmt clippy
	python3 -c 'import requests' 2>/dev/null || python3 -m pip install --quiet requests

# Build the bundled plugins and install them in the development plugins directory.
plugins: setup
	$(PLUGINS) build $(PLUGINS_MANIFEST) --release --target wasm32-wasip2 -p synthetic -p erp-datasets -p catalog
	mkdir -p data/plugins
	cp $(addprefix target/plugins/wasm32-wasip2/release/,synthetic.wasm erp_datasets.wasm catalog.wasm) data/plugins/

# Start the server in development mode: demo tenant, demo documents, the bundled plugins and
# the ERP collections they read, 127.0.0.1:8080.
run: plugins
	$(CARGO) run --release -p bulkhost-server -- serve --dev --schemas plugins/erp-datasets/schemas

# Every test: unit, HTTP end-to-end, plugin host (the plugins are built for wasm32-wasip2
# and run in the real host), property and crash tests.
test: setup
	$(CARGO) test --workspace --all-targets

# Formatting and lints, as CI enforces them, for the host and for the plugins.
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt $(PLUGINS_MANIFEST) --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(PLUGINS) clippy $(PLUGINS_MANIFEST) --workspace --target wasm32-wasip2 -- -D warnings

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt $(PLUGINS_MANIFEST) --all

# The benchmark harness (release build); figures go to BENCHMARKS.md.
bench: plugins
	$(CARGO) build --release -p bulkhost-server
	$(CARGO) run --release -p bulkhost-bench
