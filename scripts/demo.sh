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
bin/edgeid up -f "$topology" --run-dir "$run_dir" --bin-dir bin --supervise
echo

# Two refusals a user can see. Site A's pipeline identity may write only its
# own publish topic: a write to site B's topic, made as the pipeline's
# account through its edge gateway, is refused by the cloud gateway and
# counted in `edgeid status`. And the edge gateway carries only the
# pipeline's own account: the same write as another local account (nobody)
# never leaves the node.
props=$(ls "$run_dir"/edge-a-1/workloads/*/svid/kafka.properties 2>/dev/null | head -n1 || true)
if [[ -n "$props" ]] && command -v setpriv >/dev/null; then
  owner=$(stat -c %u "$props")
  group=$(stat -c %g "$props")
  echo "--- site A's pipeline (uid $owner) writes to site B's topic site-b.detections through its edge gateway:"
  echo '{"demo":"wrong site"}' | setpriv --reuid="$owner" --regid="$group" --clear-groups \
    kcat -F "$props" -P -t site-b.detections -X message.timeout.ms=10000 2>&1 | grep -v '^% Reading' || true
  bootstrap=$(sed -n 's/^bootstrap.servers=//p' "$props")
  echo "--- another local account (nobody) writes to site A's topic through the same edge gateway:"
  echo '{"demo":"other account"}' | setpriv --reuid=65534 --regid=65534 --clear-groups \
    kcat -b "$bootstrap" -X security.protocol=plaintext -P -t detections -X message.timeout.ms=5000 2>&1 | tail -n1 || true
  echo "    (the helper's log names the refused uid: $(cat "$run_dir"/edge-a-1/logs/helper-*.log 2>/dev/null | grep -c 'reason=local_user' || true) refusal(s) so far)"
  echo
fi
bin/edgeid status -f "$topology" --run-dir "$run_dir" --bin-dir bin
echo
echo "The chain keeps running; stop it with: bin/edgeid down -f $topology --run-dir $run_dir [--purge]"
