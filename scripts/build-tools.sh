#!/usr/bin/env bash
# build-tools.sh builds the pinned third-party programs edgeid tests and the
# demo run against (SPIRE, Vault, spiffe-helper) from the Go module versions
# pinned in scripts/tools/<tool>/go.mod, into a cache outside the repository:
#
#   ${EDGEID_CACHE:-$HOME/.cache/edgeid}/bin/<name>-<version>/<name>
#
# A binary already in the cache is reused, so a warm run costs seconds.
# Builds run one after the other to stay inside memory on small machines.
#
# Usage: scripts/build-tools.sh [spire|vault|spiffe-helper|kube ...]   (default: spire vault)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

# One module's checksum-database entry is not served on some networks; its
# hash is still pinned by the tools module's go.sum.
export GONOSUMDB="${GONOSUMDB:-github.com/GoogleCloudPlatform/cloudsql-proxy}"
export GOFLAGS="-mod=mod"

# build_one <tools-dir> <name> <version> <package>
build_one() {
	local dir="$1" name="$2" version="$3" pkg="$4"
	local out="$EDGEID_BIN/$name-$version/$name"
	if [[ -x "$out" ]]; then
		echo "build-tools: $name $version: cached at $out"
		return 0
	fi
	echo "build-tools: $name $version: building $pkg (this takes minutes on a cold cache)"
	mkdir -p "$(dirname "$out")"
	local start=$SECONDS
	# Build to a temporary name and rename, so an interrupted build never
	# leaves a half-written binary that a later run would take as cached.
	(cd "$here/tools/$dir" && go build -trimpath -ldflags='-s -w' -o "$out.tmp.$$" "$pkg")
	mv -f "$out.tmp.$$" "$out"
	echo "build-tools: $name $version: built in $((SECONDS - start))s"
}

tools=("$@")
[[ ${#tools[@]} -eq 0 ]] && tools=(spire vault)
for t in "${tools[@]}"; do
	case "$t" in
	spire)
		build_one spire spire-server "$SPIRE_VERSION" github.com/spiffe/spire/cmd/spire-server
		build_one spire spire-agent "$SPIRE_VERSION" github.com/spiffe/spire/cmd/spire-agent
		;;
	vault)
		build_one vault vault "$VAULT_VERSION" github.com/hashicorp/vault
		;;
	spiffe-helper)
		build_one spiffe-helper spiffe-helper "$SPIFFE_HELPER_VERSION" github.com/spiffe/spiffe-helper/cmd/spiffe-helper
		;;
	kube)
		# A real API server for the kubeedge Node check's tests: Kubernetes
		# with its staging modules replaced by their published versions
		# (scripts/tools/kube/go.mod), and the etcd it stores Nodes in.
		build_one kube kube-apiserver "$KUBE_VERSION" k8s.io/kubernetes/cmd/kube-apiserver
		build_one kube etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3
		;;
	*)
		echo "build-tools: unknown tool $t (want spire, vault, spiffe-helper or kube)" >&2
		exit 2
		;;
	esac
done
