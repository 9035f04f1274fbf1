#!/usr/bin/env bash
# dist.sh gathers every program a real host runs into dist/bin (edgeid,
# edgeid-helper, the four plugins, the DeepStream stand-in, and the pinned
# spire-server, spire-agent and vault) and packs it as
# dist/edgeid-bin-linux-<arch>.tar.gz. Unpack it into /opt/edgeid/bin on
# each host; deploy-cloud.sh and deploy-edge.sh expect it there. It expects
# `make tools build-bin` to have run (make dist does that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/versions.sh
out=dist/bin
rm -rf "$out"
mkdir -p "$out"
cp -p bin/* "$out/"
cp -p "$EDGEID_BIN/spire-server-$SPIRE_VERSION/spire-server" "$EDGEID_BIN/spire-agent-$SPIRE_VERSION/spire-agent" \
	"$EDGEID_BIN/vault-$VAULT_VERSION/vault" "$out/"
tarball="dist/edgeid-bin-linux-$(go env GOARCH).tar.gz"
tar -czf "$tarball.tmp" -C "$out" .
mv -f "$tarball.tmp" "$tarball"
(cd "$out" && sha256sum -- *) >dist/SHA256SUMS
echo "dist.sh: $(ls "$out" | wc -l) programs in $out, packed as $tarball"
