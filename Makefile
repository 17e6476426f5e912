# hellopics build, test and tooling. `make help` lists the targets.
GO       ?= go
BIN      ?= bin/hellopics
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
TOOLMOD  := -modfile=$(CURDIR)/tools/go.mod
FUZZTIME ?= 10s
BENCHTIME ?= 1s


.PHONY: toolchain-check
.PHONY: soak sim
.PHONY: example example-demo
.PHONY: help build test test-short bench fuzz proto proto-check lint demo clean alerts-check

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: toolchain-check ## build bin/hellopics
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hellopics

# go.mod pins the newest Go patch release (security fixes in crypto/tls,
# crypto/x509). With GOTOOLCHAIN=local, or a Go older than 1.21, the
# local Go builds instead: say so when it is older than the pin.
toolchain-check: ## warn when the Go in use is older than go.mod's toolchain line
	@want=$$(sed -n 's/^toolchain go//p' go.mod); have=$$($(GO) env GOVERSION | sed 's/^go//'); \
	if [ -n "$$want" ] && [ "$$(printf '%s\n%s\n' "$$want" "$$have" | sort -V | head -1)" != "$$want" ]; then \
	  echo "warning: building with Go $$have, older than the go$$want that go.mod pins (GOTOOLCHAIN=$$($(GO) env GOTOOLCHAIN)); release builds should use go$$want" >&2; \
	fi

# -p 1: one package at a time. The end-to-end suites (e2e, deploy/lab)
# run real processes with tight failover timings; on a 2-core machine,
# running them beside each other makes stalls that look like failures.
test: ## go vet, then every test under the race detector
	$(GO) vet ./...
	$(GO) test -race -count=1 -p 1 -timeout 30m ./...

test-short: ## the quick tests only, no race detector
	$(GO) test -short -count=1 ./...

bench: ## benchmarks, with allocations (long: minutes)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 60m ./...

# The deterministic simulator (internal/sim, docs/simulator.md):
# SEEDS seeds from FROM on, over every core, or one SEED traced (and
# shrunk if it fails); STRICT=1 fails on the known limitations too,
# BUG=forget-epoch injects a bug. `make test` runs 3000 seeds already.
SEEDS ?= 100000
FROM  ?= 0
SIMFLAGS := $(if $(STRICT),-strict) $(if $(BUG),-bug $(BUG))
sim: ## the protocol simulator: SEEDS=n seeds from FROM, or SEED=n replayed with its trace
ifdef SEED
	$(GO) run ./internal/sim/cmd/sim $(SIMFLAGS) -seed $(SEED)
else
	$(GO) run ./internal/sim/cmd/sim $(SIMFLAGS) -seeds $(SEEDS) -from $(FROM)
endif

SOAK ?= 60s
soak: ## the hostile-input soak against a running appliance (SOAK=60s; docs/security.md)
	HELLOPICS_SOAK=$(SOAK) $(GO) test -count=1 -run '^TestSoakHostile$$' -v -timeout 30m ./e2e/

fuzz: ## a short run of every fuzz target (FUZZTIME each)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

proto: ## regenerate the Go code from proto/ (pinned generators)
	cd proto && $(GO) tool $(TOOLMOD) buf lint && $(GO) tool $(TOOLMOD) buf generate
	cd examples/counters/proto && $(GO) tool $(TOOLMOD) buf lint && $(GO) tool $(TOOLMOD) buf generate

proto-check: proto ## fail if the committed generated code is stale
	@git diff --exit-code -- proto examples/counters/proto || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- proto examples/counters/proto)" || { echo "make proto made new files:"; git status --porcelain -- proto examples/counters/proto; exit 1; }

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) tool $(TOOLMOD) staticcheck ./...
	@if command -v shellcheck >/dev/null; then shellcheck deploy/lab/lab.sh deploy/lab/failover-bench.sh deploy/systemd/verify.sh examples/counters/demo.sh; else echo "shellcheck not installed: scripts not checked"; fi

# The Prometheus rules and the Grafana dashboard under deploy/
# (docs/dashboards.md): promtool parses the rules and runs their unit
# tests; the dashboard's test parses its queries. promtool is in Debian's
# prometheus package. e2e/TestMetricsLive (in `make test`) lints live
# scrapes and checks that every metric named under deploy/ exists.
PROMTOOL ?= promtool
alerts-check: ## promtool check and test the alerting rules, parse the dashboard's queries
	@command -v $(PROMTOOL) >/dev/null || { echo "promtool not found: apt-get install prometheus"; exit 1; }
	$(PROMTOOL) check rules deploy/prometheus/alerts.yml
	$(PROMTOOL) test rules deploy/prometheus/alerts_test.yml
	$(GO) test -count=1 ./deploy/grafana/

demo: build ## run mgmt, ctrl and data on this machine until Ctrl-C
	$(BIN) demo

example: ## build the counters example appliance into bin/counters
	$(GO) build -o bin/counters ./examples/counters/cmd/counters

example-demo: example ## run the counters example (two mgmt, a pair, a SIGKILL of the master)
	BIN=bin/counters sh examples/counters/demo.sh

clean: ## remove build output
	rm -rf bin

# The network-namespace lab: lab-up, lab-down, lab-failover, lab-logs, lab-status.
include deploy/lab/lab.mk
