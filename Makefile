# OnionRP Dock. `make run` serves on the embedded store; `make test` runs every test.
SWIFT ?= swift
CONFIG ?= config/overlay.yaml
PYTEST_ARGS ?=

.PHONY: run build deps test-deps test test-swift test-integration example bench clean deploy-test

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

test-swift:
	$(SWIFT) build --build-tests
	scripts/with-redis.sh $(SWIFT) test

test-integration:
	$(SWIFT) build
	python3 -m pytest -q Tests/integration $(PYTEST_ARGS)

## Install what is missing, build, and run the Swift tests and the integration/browser tests.
test: test-deps
	$(MAKE) test-swift
	$(MAKE) test-integration

## Build the Dockerfile and run compose.yaml with rootful podman, then test the stack through nginx (docs/deploy.md).
deploy-test:
	scripts/deploy-test.sh

clean:
	rm -rf .build examples/hello-plugin/.build
