# edgeid — the two commands are `make demo` and `make test`. Both install
# what they need first: Debian packages (scripts/install-deps.sh) and the
# pinned SPIRE, Vault, spiffe-helper, kube-apiserver and etcd binaries
# (scripts/build-tools.sh), built once into ${EDGEID_CACHE:-$HOME/.cache/edgeid}
# and reused after.

GO        ?= go
GOFLAGS_T ?= -race -count=1
# Packages whose tests start real programs; they run one package at a time.
INTEGRATION_PKGS = ./test/integration/...
UNIT_PKGS = $(shell $(GO) list ./... | grep -v -e /test/integration/ -e /test/bench/)

# edgeid's own programs, built into bin/ for the demo and the runner.
BIN_PKGS = ./orchestrator/cmd/edgeid ./helper/cmd/edgeid-helper ./plugins/cmd/... ./test/standin/deepstream-test5-app

.PHONY: all deps tools test unit integration demo bench fuzz vet build build-bin dist clean

all: build

deps:
	scripts/install-deps.sh

tools:
	scripts/build-tools.sh spire vault spiffe-helper kube

build:
	$(GO) build ./...

build-bin:
	@mkdir -p bin
	$(GO) build -o bin/ $(BIN_PKGS)

# Modules of their own (they pull in SPIRE, which the root go.mod stays
# free of); vetting them in `make test` makes any drift from the root
# module ("go: updates to go.mod needed") fail CI instead of `make bench`.
BENCH_MODULES = test/bench/kubeedge/spirex509pop

vet:
	$(GO) vet ./...
	set -e; for m in $(BENCH_MODULES); do (cd $$m && GONOSUMDB=github.com/GoogleCloudPlatform/cloudsql-proxy $(GO) vet ./...); done

## test: every unit test with -race, the fuzz targets, then every integration test on the real binaries.
test: deps tools vet unit fuzz integration

unit:
	$(GO) test $(GOFLAGS_T) $(UNIT_PKGS)

# Each fuzz target runs for FUZZTIME on top of its committed seed corpus.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./plugins/common/deepstream/
	$(GO) test -run '^$$' -fuzz '^FuzzParseStat$$' -fuzztime $(FUZZTIME) ./plugins/agent/workloadattestor/deepstream/
	$(GO) test -run '^$$' -fuzz '^FuzzParseStatus$$' -fuzztime $(FUZZTIME) ./plugins/agent/workloadattestor/deepstream/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSyscall$$' -fuzztime $(FUZZTIME) ./plugins/agent/workloadattestor/deepstream/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAuxv$$' -fuzztime $(FUZZTIME) ./plugins/agent/workloadattestor/deepstream/
	$(GO) test -run '^$$' -fuzz '^FuzzParseELFHeader$$' -fuzztime $(FUZZTIME) ./plugins/agent/workloadattestor/deepstream/
	$(GO) test -run '^$$' -fuzz '^FuzzParseMapsLine$$' -fuzztime $(FUZZTIME) ./plugins/agent/workloadattestor/deepstream/
	$(GO) test -run '^$$' -fuzz '^FuzzContainerID$$' -fuzztime $(FUZZTIME) ./plugins/agent/workloadattestor/deepstream/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAttestationPayload$$' -fuzztime $(FUZZTIME) ./plugins/server/nodeattestor/kubeedge/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeChallengeResponse$$' -fuzztime $(FUZZTIME) ./plugins/server/nodeattestor/kubeedge/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeStrict$$' -fuzztime $(FUZZTIME) ./plugins/common/kubeedge/
	$(GO) test -run '^$$' -fuzz '^FuzzParseDenyList$$' -fuzztime $(FUZZTIME) ./plugins/server/nodeattestor/kubeedge/
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime $(FUZZTIME) ./bootstrap/vaultboot/
	$(GO) test -run '^$$' -fuzz '^FuzzIdentityRecipients$$' -fuzztime $(FUZZTIME) ./orchestrator/runner/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./helper/config/

integration:
	$(GO) test $(GOFLAGS_T) -p 1 -timeout 40m -v $(INTEGRATION_PKGS)

## demo: the main chain on this machine, loopback only.
demo: deps tools build-bin
	scripts/demo.sh

## dist: every program a real host runs, in dist/bin and a tarball (see "Running on real hosts").
dist: tools build-bin
	scripts/dist.sh

## bench: benchmarks under test/bench; they print their figures.
bench: deps tools
	$(GO) test -run '^$$' -bench . -count 1 -timeout 30m ./test/bench/deepstream/ ./test/bench/kubeedge/ ./test/bench/orchestrator/
	# The helper benchmarks run their measurement once per call (tens of seconds).
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./test/bench/helper/
	# SPIRE's own x509pop next to kubeedge; a module of its own, so SPIRE
	# never enters the root go.mod.
	cd test/bench/kubeedge/spirex509pop && GONOSUMDB=github.com/GoogleCloudPlatform/cloudsql-proxy $(GO) test -run '^$$' -bench . -cpu 1 .

clean:
	rm -rf bin .run dist
