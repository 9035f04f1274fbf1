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
	scripts/build-tools.sh spire vault spiffe-helper kube prometheus

build:
	$(GO) build ./...

build-bin:
	@mkdir -p bin
	$(GO) build -o bin/ $(BIN_PKGS)

# Modules of their own (they pull in SPIRE, which the root go.mod stays
# free of); vetting them in `make test` makes any drift from the root
# module ("go: updates to go.mod needed") fail CI instead of `make bench`.
BENCH_MODULES = test/bench/kubeedge/spirex509pop test/bench/fleet

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
	GO=$(GO) scripts/fuzz.sh ./plugins/common/deepstream/ FuzzParse $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/agent/workloadattestor/deepstream/ FuzzParseStat $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/agent/workloadattestor/deepstream/ FuzzParseStatus $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/agent/workloadattestor/deepstream/ FuzzParseSyscall $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/agent/workloadattestor/deepstream/ FuzzParseAuxv $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/agent/workloadattestor/deepstream/ FuzzParseELFHeader $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/agent/workloadattestor/deepstream/ FuzzParseMapsLine $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/agent/workloadattestor/deepstream/ FuzzContainerID $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/server/nodeattestor/kubeedge/ FuzzParseAttestationPayload $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/server/nodeattestor/kubeedge/ FuzzDecodeChallengeResponse $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/common/kubeedge/ FuzzDecodeStrict $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./plugins/server/nodeattestor/kubeedge/ FuzzParseDenyList $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./bootstrap/vaultboot/ FuzzParseManifest $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./orchestrator/runner/ FuzzIdentityRecipients $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./helper/config/ FuzzParse $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./helper/kafkagw/wire/ FuzzRequestFrame $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./helper/kafkagw/recordcrypt/batch/ FuzzDecode $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./helper/kafkagw/recordcrypt/ FuzzOpen $(FUZZTIME)
	GO=$(GO) scripts/fuzz.sh ./helper/kafkagw/recordcrypt/ FuzzReplaceWrappedKey $(FUZZTIME)

integration:
	GO=$(GO) scripts/integration.sh $(GOFLAGS_T) -p 1 -timeout 40m -v $(INTEGRATION_PKGS)

## demo: the main chain on this machine, loopback only.
demo: deps tools build-bin
	scripts/demo.sh

## dist: every program a real host runs, in dist/bin and a tarball (see "Running on real hosts").
dist: tools build-bin
	scripts/dist.sh

## bench: benchmarks under test/bench; they print their figures.
bench: deps tools
	# -p 1: one benchmark binary at a time, so that none measures another's load.
	$(GO) test -p 1 -run '^$$' -bench . -count 1 -timeout 40m ./test/bench/deepstream/ ./test/bench/kubeedge/ ./test/bench/orchestrator/
	# The helper benchmarks run their measurement once per call (tens of seconds).
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./test/bench/helper/
	# The gateway paths (direct, relay, cloud, edge) in one run, the policy decision cost, then record encryption.
	$(GO) test -run '^$$' -bench . -count 1 -timeout 15m ./test/bench/gateway/
	# Sealing one record with a current data key: its time, and no allocation.
	$(GO) test -run '^$$' -bench 'Seal|Open' -benchmem -count 1 ./helper/kafkagw/recordcrypt/
	# SPIRE's own x509pop next to kubeedge; a module of its own, so SPIRE
	# never enters the root go.mod.
	cd test/bench/kubeedge/spirex509pop && GONOSUMDB=github.com/GoogleCloudPlatform/cloudsql-proxy $(GO) test -run '^$$' -bench . -cpu 1 .
	# Fleet scale: N simulated edge nodes (SPIRE's agent API) against one
	# real SPIRE server, kubeedge next to x509pop, on SQLite and PostgreSQL;
	# a module of its own for the same reason. FLEET_* variables reshape it
	# (test/bench/fleet/README.md).
	cd test/bench/fleet && GONOSUMDB=github.com/GoogleCloudPlatform/cloudsql-proxy $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 20m .

clean:
	rm -rf bin .run dist
