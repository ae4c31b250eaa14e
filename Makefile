GO      ?= go
BIN     ?= bin
PKGS    ?= ./...

.PHONY: build test vet demo bench clean

build:
	$(GO) build -o $(BIN)/octoroll ./cmd/octoroll
	$(GO) build -o $(BIN)/example-app ./examples/app
	$(GO) build -o $(BIN)/loadgen ./examples/loadgen

vet:
	$(GO) vet $(PKGS)

# The test command CI runs (.ci/run) and the README gives.
test: vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# A full rollout and a rollback on this machine, no other setup.
demo: build
	$(GO) run ./examples/demo --bin $(BIN)

# Scale and speed figures; prints a table and writes it to bench/results.md.
bench:
	$(GO) run ./cmd/octoroll-bench

clean:
	rm -rf $(BIN)
