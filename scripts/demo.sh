#!/usr/bin/env bash
# demo.sh runs edgeid's main chain on this machine, loopback only, printing
# each step. It expects `make deps tools` to have run (make demo does that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go test -count=1 -v -run 'TestWorkloadGetsVerifiableSVID' ./test/integration/smoke
