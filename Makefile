# The project's commands; CI (.ci/run) calls `lint` and `test`.
CARGO ?= cargo
# The guest plugins are a workspace of their own (plugins/), built under the one target/ dir.
PLUGINS = CARGO_TARGET_DIR=target/plugins $(CARGO)
PLUGINS_MANIFEST = --manifest-path plugins/Cargo.toml

.PHONY: setup setup-build plugins run test lint fmt bench bench-postgres

# Installing Debian packages needs root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# What building and running needs beyond the Rust toolchain: the wasm target plugins build for.
setup-build:
	rustup target add wasm32-wasip2

# What a fresh machine lacks for the tests too: the linters, the Python `requests` package the
# Winfra client test runs with, the Python tools the conformance and plugin tests run
# (target/venv), componentize-js for the JavaScript plugin example, PostgreSQL, which the tests
# of the shared engine start a private cluster of, and Debian's Chromium with playwright-core
# (tests/browser), which the console's test drives.
JS_PLUGIN = plugins/javascript/shops-by-city
setup: setup-build target/venv/installed tests/browser/node_modules/.installed $(JS_PLUGIN)/node_modules/.installed
	rustup component add rustfmt clippy
	python3 -c 'import requests' 2>/dev/null || python3 -m pip install --quiet requests
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	test -x /usr/bin/chromium || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# playwright-core at the version tests/browser/package-lock.json names; it drives Debian's
# Chromium, so no browser is downloaded.
tests/browser/node_modules/.installed: tests/browser/package-lock.json
	cd tests/browser && npm ci --silent --no-audit --no-fund
	touch $@

# componentize-js at the version the example's package-lock.json names.
$(JS_PLUGIN)/node_modules/.installed: $(JS_PLUGIN)/package-lock.json
	cd $(JS_PLUGIN) && npm ci --silent --no-audit --no-fund
	touch $@

# The OpenAPI validator, Schemathesis and the client generator, at the versions the tests name.
target/venv/installed: tests/requirements.txt
	python3 -m venv target/venv
	target/venv/bin/pip install --quiet -r tests/requirements.txt
	touch $@

# Build the bundled plugins and install them in the development plugins directory.
plugins: setup-build
	$(PLUGINS) build $(PLUGINS_MANIFEST) --release --target wasm32-wasip2 -p synthetic -p ledger -p erp-datasets -p catalog
	mkdir -p data/plugins
	cp $(addprefix target/plugins/wasm32-wasip2/release/,synthetic.wasm ledger.wasm erp_datasets.wasm catalog.wasm) data/plugins/

# Start the server in development mode: demo tenant, demo documents, the bundled plugins and
# the ERP collections they read, 127.0.0.1:8080.
run: plugins
	$(CARGO) run --release -p bulkhost-server -- serve --dev --schemas plugins/erp-datasets/schemas

# Every test: unit, HTTP end-to-end, plugin host (the plugins are built for wasm32-wasip2
# and run in the real host), property and crash tests on the embedded engine; then the
# end-to-end suite again, and the tests of several hosts, on a private PostgreSQL cluster.
test: setup
	$(CARGO) test --workspace --all-targets
	scripts/with-postgres.sh $(CARGO) test -p bulkhost-tests --test all -- --include-ignored

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

# The PostgreSQL engine beside the redb engine and the peers (../shared/peers), on a private
# cluster; figures go to BENCHMARKS.md.
bench-postgres: plugins setup
	$(CARGO) build --release -p bulkhost-server
	scripts/with-postgres.sh scripts/bench-postgres.sh
