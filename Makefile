GO      ?= go
BIN     ?= bin
PKGS    ?= ./...

.PHONY: build test vet demo bench clean prometheus node-deps

# The metrics tests run a real Prometheus server and the deploy tests promtool: the
# ones on PATH (CI installs the Debian package), else ones built from source into
# $(BIN)/tools (about 5 minutes on two cores, once).
PROMETHEUS_VERSION ?= v0.316.0
TOOLS := $(abspath $(BIN))/tools

build:
	$(GO) build -o $(BIN)/octoroll ./cmd/octoroll
	$(GO) build -o $(BIN)/example-app ./examples/app
	$(GO) build -o $(BIN)/loadgen ./examples/loadgen

vet:
	$(GO) vet $(PKGS)

# The test command CI runs (.ci/run) and the README gives. The verdict simulation
# (1,000 seeded runs per case through the engine, pure computation) runs without the
# race detector, which would only slow it; everything else runs under it.
test: vet prometheus node-deps
	PATH="$(TOOLS):$$PATH" $(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(GO) test -count=1 -timeout 20m -run TestSimulatedVerdicts ./controller

prometheus:
	@for tool in prometheus promtool; do \
	  if command -v $$tool >/dev/null 2>&1 || [ -x "$(TOOLS)/$$tool" ]; then continue; fi; \
	  echo "$$tool not found: building $(PROMETHEUS_VERSION) into $(TOOLS) (a few minutes, once)"; \
	  GOBIN="$(TOOLS)" $(GO) install github.com/prometheus/prometheus/cmd/$$tool@$(PROMETHEUS_VERSION) || exit 1; \
	done

# The xds tests run Node's proxyless gRPC client (@grpc/grpc-js-xds) against octoroll:
# npm ci installs its pinned packages from the npm registry, again only when the lock
# file changes. Without npm the test skips on a laptop and fails under CI (CI=true).
NODE_CLIENT := xds/testdata/nodeclient

node-deps: $(NODE_CLIENT)/node_modules/.package-lock.json

$(NODE_CLIENT)/node_modules/.package-lock.json: $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(NODE_CLIENT) && npm ci --no-audit --no-fund && touch node_modules/.package-lock.json; \
	elif [ "$$CI" = true ]; then \
	  echo "npm not found: CI needs Node.js and npm for the Node xDS client test" >&2; exit 1; \
	else \
	  echo "npm not found: the Node xDS client test will be skipped"; \
	fi

# A full rollout and a rollback on this machine, no other setup.
demo: build
	$(GO) run ./examples/demo --bin $(BIN)

# Scale and speed figures; prints a table and writes it to bench/results.md.
bench:
	$(GO) run ./cmd/octoroll-bench

clean:
	rm -rf $(BIN)
