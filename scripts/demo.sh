#!/usr/bin/env bash
# demo.sh runs edgeid's main chain on this machine, loopback only:
# Vault → cloud SPIRE → edge SPIRE (two sites) → DeepStream stand-in under
# edgeid-helper → Kafka over mTLS, then prints the status tree. It expects
# `make deps tools build-bin` to have run (make demo does that). The
# processes keep running afterwards; stop them with `bin/edgeid down`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
topology="${EDGEID_TOPOLOGY:-conf/topology.hcl}"
run_dir="${EDGEID_RUN_DIR:-.run}"
bin/edgeid up -f "$topology" --run-dir "$run_dir" --bin-dir bin
echo
bin/edgeid status -f "$topology" --run-dir "$run_dir" --bin-dir bin
echo
echo "The chain keeps running; stop it with: bin/edgeid down -f $topology --run-dir $run_dir [--purge]"
