# Two commands: `make run` brings up the whole system on embedded defaults,
# `make test` runs the full suite. Both build what they need.
GO        ?= go
BIN       := $(CURDIR)/bin
# bin/temporal is relative so that `make bin/temporal` names this target.
TEMPORAL  := bin/temporal
VMS       := $(BIN)/vms
export VMS_TEMPORAL_BIN := $(CURDIR)/$(TEMPORAL)

.PHONY: run build test lint bench clean

# The Temporal CLI carries the dev server; v1.5.1 is the last `go install`able
# release. A cold build takes minutes, so it is built once into ./bin.
$(TEMPORAL):
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@v1.5.1

build:
	$(GO) build -o $(VMS) ./cmd/vms

run: build $(TEMPORAL)
	$(VMS) dev $(ARGS)

test: $(TEMPORAL)
	$(GO) test -count=1 -timeout 20m ./...

# workflowcheck flags non-deterministic calls (time.Now, goroutines, map
# ranging, I/O) reachable from workflow code.
WORKFLOWCHECK := go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(WORKFLOWCHECK) ./workflows/...

bench: $(TEMPORAL)
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/ ./mediaworker/
	$(GO) test -run '^$$' -bench . -benchtime 5x ./activities/
	$(GO) test -run '^$$' -bench . -benchtime 300x ./workflows/

clean:
	rm -rf $(BIN) .data
