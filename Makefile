# replay — build, test, demo, lint.
#
#   make demo    run the whole flow locally (in-process broker, local warehouse)
#   make test    the test suite, with the race detector
#   make test-integration  replica processes on a PostgreSQL catalog: SIGKILLs, a SIGSTOPped zombie
#   make lint    gofmt, go vet, staticcheck
#   make fuzz    run every fuzz target (FUZZ_TARGETS) for FUZZTIME each
#   make bench   Go benchmarks, then replay-bench's table of measurements
#                against baselines taken in the same run (BENCHMARKS.md)
#   make bench-scaling  commit contention with 1..16 replica processes on a PostgreSQL catalog

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
# How long make test fuzzes each target: a count, so the work done does not
# depend on how loaded the machine is.
FUZZTIME_TEST ?= 500x

# Every fuzz target, as package:Target; go test -fuzz takes one target of one
# package at a time. TestMakefileFuzzesEveryTarget (cmd/replay) checks that
# this list holds every func Fuzz… in the repository.
FUZZ_TARGETS := \
	./schemas:FuzzDecode \
	./schemas:FuzzDecodeAgreesWithEncodingJSON \
	./schemas:FuzzEnvelopeRoundTrip \
	./schemas:FuzzSniffShape \
	./compare:FuzzDecodeRow \
	./normalize:FuzzCompare \
	./normalize:FuzzDiff \
	./pipeline:FuzzRedact \
	./pipeline:FuzzReplayRequest \
	./config:FuzzLoad \
	./config:FuzzSet

# $(call fuzz_each,TIME) fuzzes every target for TIME, stopping at the first
# failure (the failing input is written under the package's testdata/fuzz).
fuzz_each = set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t\#\#*:} in $${t%%:*} for $(1)"; \
		$(GO) test -run '^$$' -fuzz "^$${t\#\#*:}\$$" -fuzztime $(1) "$${t%%:*}"; \
	done

PEERS       := bin/peers

.PHONY: all build test test-integration demo lint fuzz bench bench-setup bench-scaling clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/replay ./cmd/replay

test:
	$(GO) test -race -count=1 -timeout 15m ./...
	@$(call fuzz_each,$(FUZZTIME_TEST))

# Tests that run several replica processes against a throwaway PostgreSQL
# (build tag integration); .ci/run runs them after make test.
test-integration:
	$(GO) test -race -count=1 -timeout 15m -tags integration -run 'TestReplicas|TestZombieReplica' ./cmd/replay

demo: build
	./bin/replay demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags integration ./...
	$(GO) run $(STATICCHECK) -tags integration ./...

fuzz:
	@$(call fuzz_each,$(FUZZTIME))

# The peers replay-bench compares with (vegeta, GoReplay); never fails.
bench-setup:
	@GO=$(GO) ./bench/setup-peers.sh $(PEERS)

# Go benchmarks of the hot functions with their allocations (decode, Arrow
# row append, normalize+diff, rewrite, live comparison) and of the Parquet
# settings through the sink; then replay-bench, whose table BENCHMARKS.md
# quotes. The pipeline's and compare's other benchmarks (backlog memory,
# rate, pace, the compare job) are measured by replay-bench; run them with
# go test -bench . ./pipeline ./compare.
bench: build bench-setup
	$(GO) test -run '^$$' -bench . -benchmem ./schemas ./normalize
	$(GO) test -run '^$$' -bench 'Rewrite|LiveCompare' -benchmem ./pipeline
	$(GO) test -run '^$$' -bench SinkSettings -benchtime 2x ./bench
	$(GO) run ./cmd/replay-bench -replay bin/replay -goreplay $(PEERS)/goreplay -vegeta $(PEERS)/vegeta -peer-logs $(PEERS)

# Replica processes of one group on a shared PostgreSQL catalog: table
# commits/s, conflict retries per commit, p99 commit latency. Not in make test.
REPLICAS ?= 1,2,4,8,16
bench-scaling: build
	$(GO) run ./cmd/replay-scaling -bin bin/replay -replicas $(REPLICAS)

clean:
	rm -rf bin replay-data
