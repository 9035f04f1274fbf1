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
# Usage: scripts/build-tools.sh [spire|vault|spiffe-helper|kube|prometheus ...]   (default: spire vault)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
source "$here/versions.sh"

# One module's checksum-database entry is not served on some networks; its
# hash is still pinned by the tools module's go.sum.
export GONOSUMDB="${GONOSUMDB:-github.com/GoogleCloudPlatform/cloudsql-proxy}"
export GOFLAGS="-mod=mod"

# version_of <name> <binary> prints what the program says its version is.
version_of() {
	case "$1" in
	spire-server | spire-agent) "$2" --version 2>&1 ;;
	vault) "$2" version 2>&1 ;;
	spiffe-helper) "$2" -version 2>&1 ;;
	etcd) "$2" --version 2>&1 | head -n 1 ;;
	kube-apiserver) "$2" --version 2>&1 ;;
	prometheus | promtool) "$2" --version 2>&1 | head -n 1 ;;
	esac
}

# cached_ok <name> <version> <binary> checks a cached program before it is
# trusted: its SHA-256 must be the one recorded when it was built (a
# truncated, replaced or half-copied file fails), and it must run and name
# the pinned version.
cached_ok() {
	local name="$1" version="$2" out="$3" said
	[[ -x "$out" && -f "$out.sha256" ]] || return 1
	if ! (cd "$(dirname "$out")" && sha256sum --status -c "$(basename "$out").sha256"); then
		echo "build-tools: $name $version: $out does not match its recorded SHA-256; rebuilding" >&2
		return 1
	fi
	said=$(version_of "$name" "$out")
	if [[ "$said" != *"${version#v}"* ]]; then
		echo "build-tools: $name $version: $out says it is \"$said\"; rebuilding" >&2
		return 1
	fi
}

# build_one <tools-dir> <name> <version> <package> [ldflags]
build_one() {
	local dir="$1" name="$2" version="$3" pkg="$4" extra="${5:-}"
	local out="$EDGEID_BIN/$name-$version/$name"
	if cached_ok "$name" "$version" "$out"; then
		echo "build-tools: $name $version: cached at $out (SHA-256 and version checked)"
		return 0
	fi
	echo "build-tools: $name $version: building $pkg (this takes minutes on a cold cache)"
	mkdir -p "$(dirname "$out")"
	local start=$SECONDS
	# Build to a temporary name and rename, so an interrupted build never
	# leaves a half-written binary that a later run would take as cached;
	# the recorded hash is written last, so it always belongs to a whole
	# binary.
	rm -f "$out.sha256"
	(cd "$here/tools/$dir" && go build -trimpath -ldflags="-s -w $extra" -o "$out.tmp.$$" "$pkg")
	mv -f "$out.tmp.$$" "$out"
	(cd "$(dirname "$out")" && sha256sum "$name" >"$name.sha256.tmp.$$" && mv -f "$name.sha256.tmp.$$" "$name.sha256")
	if ! cached_ok "$name" "$version" "$out"; then
		echo "build-tools: $name $version: the new build does not name version $version" >&2
		exit 1
	fi
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
		build_one kube kube-apiserver "$KUBE_VERSION" k8s.io/kubernetes/cmd/kube-apiserver \
			"-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
		build_one kube etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3
		;;
	prometheus)
		# The demo's Prometheus and promtool (alert-rule tests).
		for p in prometheus promtool; do
			build_one prometheus "$p" "$PROMETHEUS_VERSION" "github.com/prometheus/prometheus/cmd/$p" \
				"-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}"
		done
		;;
	*)
		echo "build-tools: unknown tool $t (want spire, vault, spiffe-helper, kube or prometheus)" >&2
		exit 2
		;;
	esac
done
