# OnionRP Dock. `make run` serves on the embedded store; `make test` runs every test.
SWIFT ?= swift
SHELL := /bin/bash
CONFIG ?= config/overlay.yaml
PYTEST_ARGS ?=

.PHONY: run build deps test-deps test test-swift test-integration test-cluster test-sfu example docs bench clean deploy-test lint api-check api-baseline

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

build: deps
	$(SWIFT) build -c release

## Install what is missing, build release, and serve config/overlay.yaml (Ctrl-C stops gracefully).
run: build
	.build/release/overlay-engine serve --config $(CONFIG)

example:
	cd examples/hello-plugin && $(SWIFT) build

## The PluginAPI reference (DocC) from Sources/PluginAPI/PluginAPI.docc and the symbols of a build of PluginAPI alone,
## in its own scratch path: offline, no docc plugin dependency for plugin authors, and not part of `make test`.
DOCC ?= docc
DOCS_BUILD := $(CURDIR)/.build-docs
DOCS_OUT ?= $(DOCS_BUILD)/PluginAPI.doccarchive
docs:
	$(SWIFT) package --package-path Sources/PluginAPI --scratch-path $(DOCS_BUILD) dump-symbol-graph
	graphs=$$(dirname $$(ls $(DOCS_BUILD)/*/symbolgraph/PluginAPI.symbols.json | head -1)) && \
	$(DOCC) convert Sources/PluginAPI/PluginAPI.docc --additional-symbol-graph-dir $$graphs \
	  --fallback-display-name PluginAPI --fallback-bundle-identifier dock.onionrp.PluginAPI \
	  --transform-for-static-hosting --output-path $(DOCS_OUT)
	@echo "PluginAPI reference: $(DOCS_OUT) (serve that folder and open /documentation/pluginapi/, or run: $(DOCC) preview Sources/PluginAPI/PluginAPI.docc --additional-symbol-graph-dir $(DOCS_BUILD)/<triple>/symbolgraph)"

## Formatting (.swift-format, swift-format from the toolchain): `make lint` checks, `make format` rewrites.
SWIFT_FORMAT ?= swift-format
FORMAT_PATHS := Sources Plugins examples/hello-plugin/Sources examples/counter-plugin/Sources fuzz/Sources \
  Tests/EngineTests Tests/PluginAPITests Tests/MediaTests Tests/TTSTests Tests/WebRTCSignalingTests Tests/TestSupport \
  Tests/fixtures/misbehaving-plugin/Sources
lint:
	$(SWIFT_FORMAT) lint --strict --recursive $(FORMAT_PATHS)
format:
	$(SWIFT_FORMAT) format --in-place --recursive $(FORMAT_PATHS)

## PluginAPI's declarations against Sources/PluginAPI/API.txt: a change without a PluginAPIVersion bump fails
## (scripts/api-check.py). After a bump, `make api-baseline` rewrites the baseline.
API_BUILD := $(CURDIR)/.build-api
api-graph:
	$(SWIFT) package --package-path Sources/PluginAPI --scratch-path $(API_BUILD) dump-symbol-graph --minimum-access-level private --skip-synthesized-members >/dev/null
api-check: api-graph
	python3 scripts/api-check.py $$(dirname $$(ls $(API_BUILD)/*/symbolgraph/PluginAPI.symbols.json | head -1))
api-baseline: api-graph
	python3 scripts/api-check.py $$(dirname $$(ls $(API_BUILD)/*/symbolgraph/PluginAPI.symbols.json | head -1)) --write

test-swift:
	$(SWIFT) build --build-tests
	scripts/with-redis.sh $(SWIFT) test

test-integration:
	$(SWIFT) build
	python3 -m pytest -q Tests/integration --ignore=Tests/integration/test_sfu_browser.py $(PYTEST_ARGS)

## The SFU media tests: a real Janus and headless Chromium (publisher + three viewers, in sfu and p2p mode), about
## 2-3 minutes; their figures land in test-artifacts/sfu-figures.json (docs/PERFORMANCE.md).
test-sfu: test-deps
	$(SWIFT) build
	python3 -m pytest -q -s Tests/integration/test_sfu_browser.py $(PYTEST_ARGS)

## Install what is missing, build, and run the Swift tests and the integration/browser tests.
test: test-deps
	$(MAKE) test-swift
	$(MAKE) test-integration

## The scale-out tests on release builds: three engines sharing one redis-server (AOF) behind nginx
## (Tests/integration/test_cluster.py; `make test` runs the same file on the debug build).
test-cluster: test-deps
	$(SWIFT) build -c release
	ONIONRP_BUILD_DIR=$(CURDIR)/.build/release python3 -m pytest -q Tests/integration/test_cluster.py $(PYTEST_ARGS)

## Build the Dockerfile and run compose.yaml with rootful podman, then test the stack through nginx (docs/deploy.md).
deploy-test:
	scripts/deploy-test.sh

.PHONY: fuzz test-asan test-tsan format api-graph bench-perf bench-http
FUZZ_SECONDS ?= 45

## The Swift tests under AddressSanitizer / ThreadSanitizer, each in its own scratch path (README "Fuzzing and sanitizers").
# LeakSanitizer off: every leak it reports is XCTest's own (test cases and expectations kept past the run).
test-asan:
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 scripts/with-redis.sh $(SWIFT) test --sanitize=address --scratch-path .build-asan

# ThreadSanitizer cannot see a contended Synchronization.Mutex being taken (its slow path is in the
# uninstrumented runtime: scripts/tsan-mutex-false-positive.swift reproduces it in 10 lines), so it
# reports races between accesses that the Mutex orders. Its reports are listed, not fatal; failing tests are.
test-tsan:
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS=exitcode=0 scripts/with-redis.sh $(SWIFT) test --sanitize=thread --scratch-path .build-tsan 2>&1 | tee .build-tsan/test.log; \
	  status=$${PIPESTATUS[0]}; \
	  echo "tsan: $$(grep -c 'WARNING: ThreadSanitizer' .build-tsan/test.log) report(s); the racing frames:"; \
	  grep -A2 'WARNING: ThreadSanitizer' .build-tsan/test.log | grep '#0' | sed 's/ (.*//' | sort | uniq -c; \
	  exit $$status

## Build the libFuzzer targets of fuzz/ and run each for FUZZ_SECONDS (regression inputs replayed first).
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

## Benchmarks (not part of `make test`; docs/PERFORMANCE.md): fan-out and socket memory at 1, 100, 1,000 and 10,000
## overlays, and the HTTP path against a bare Hummingbird app. Release builds, engine and load pinned to separate cores.
bench-perf:
	bench/perf.sh
bench-http:
	bench/http.sh

clean:
	rm -rf .build .build-docs .build-api examples/hello-plugin/.build examples/counter-plugin/.build
