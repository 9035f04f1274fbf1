#!/bin/sh
# edgeid-compose.sh runs the one-shot steps of docker-compose.yml inside
# edgeid's image. Everything the long-running services read is written by
# `edgeid render`; this script only adds what a real deployment gets from
# its operator: KubeEdge node credentials, Vault's unseal identity, join
# token, bootstrap bundles and registration entries.
#
#   edgeid-compose.sh render          every host's configs into /render/<host>/...
#   edgeid-compose.sh vault-bootstrap init/unseal Vault, PKI, AppRole (idempotent)
#   edgeid-compose.sh enroll-cloud    cloud bundle, join token, cloud entries
#   edgeid-compose.sh enroll-site     a site's bundle and workload entries
#
# Registration entries come from the spire/entries.json `edgeid render`
# writes, through `edgeid register` (idempotent); only the entry of the
# compose-only Kafka sidecar is made here.
#
# Every step is idempotent: `docker compose up` runs them again on each start.
set -eu

TOPOLOGY="${EDGEID_TOPOLOGY:-/etc/edgeid/conf/compose/topology.hcl}"
STATE=/var/lib/edgeid
BIN=/opt/edgeid/bin
# The control plane's account (users.control of the topology).
CONTROL=61000:61000

log() { echo "edgeid-compose: $*" >&2; }

# hcl_value FILE KEY prints the first quoted value of KEY in a rendered file.
hcl_value() {
	sed -n "s/^[[:space:]]*$2 = \"\\(.*\\)\"\$/\\1/p" "$1" | head -n 1
}

# wait_healthy KIND SOCKET waits (bounded) until a SPIRE server or agent answers.
wait_healthy() {
	i=0
	until "$BIN/spire-$1" healthcheck -socketPath "$2" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -ge 120 ]; then
			log "spire-$1 at $2 not healthy after 120 s"
			return 1
		fi
		sleep 1
	done
}

# ensure_entry SOCKET SPIFFE_ID ARGS... creates an entry unless one exists.
ensure_entry() {
	socket=$1
	id=$2
	shift 2
	if "$BIN/spire-server" entry show -socketPath "$socket" -spiffeID "$id" | grep -q 'Entry ID'; then
		log "entry $id exists"
		return 0
	fi
	"$BIN/spire-server" entry create -socketPath "$socket" -spiffeID "$id" "$@" >/dev/null
	log "entry $id created"
}

# issue_node_cert DIR NODE issues an edgecore-style node certificate (what
# cloudcore's CA signs: P-256, O=system:nodes, CN=system:node:<node>, client
# auth) with the compose KubeEdge CA.
issue_node_cert() {
	dir=$1
	node=$2
	[ -s "$dir/server.crt" ] && return 0
	ext=$(mktemp)
	printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$ext"
	openssl ecparam -name prime256v1 -genkey -noout -out "$dir/server.key"
	chmod 0600 "$dir/server.key"
	openssl req -new -key "$dir/server.key" -subj "/O=system:nodes/CN=system:node:$node" -out "$dir/server.csr"
	openssl x509 -req -in "$dir/server.csr" -CA /render/kubeedge/ca-key/rootCA.crt \
		-CAkey /render/kubeedge/ca-key/rootCA.key -CAcreateserial -days 365 \
		-extfile "$ext" -out "$dir/server.crt" 2>/dev/null
	rm -f "$dir/server.csr" "$ext"
	log "issued KubeEdge node certificate for $node"
}

render() {
	# A throw-away demo: Vault's unseal share is encrypted to an identity in
	# the cloud host's volume. Real deployments give the topology unseal
	# custodians or Transit auto-unseal instead (bootstrap/README.md).
	"$BIN/edgeid" render -f "$TOPOLOGY" --out /render --plugin-dir "$BIN" --insecure-local-unseal

	# edgeid plays cloudcore's CA, as `edgeid up` does. With a real KubeEdge
	# cluster, mount its rootCA.crt and each node's certs instead.
	ca=/render/kubeedge/ca-key
	if [ ! -s "$ca/rootCA.key" ]; then
		openssl ecparam -name prime256v1 -genkey -noout -out "$ca/rootCA.key"
		chmod 0600 "$ca/rootCA.key"
		openssl req -new -x509 -key "$ca/rootCA.key" -subj "/CN=KubeEdge" -days 3650 \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
			-out "$ca/rootCA.crt"
		log "created the KubeEdge CA"
	fi
	cp "$ca/rootCA.crt" /render/kubeedge/ca/rootCA.crt
	# Each host's private socket directory (servers' admin sockets,
	# upstream agents): only edgeid's own services mount the state volume.
	for root in /render/*$STATE; do
		[ -d "$root" ] || continue
		mkdir -p "$root/run/private"
		chmod 0700 "$root/run/private"
	done
	# Vault's raft storage directory.
	mkdir -p "/render/$VAULT_HOST$STATE/vault/data"
	# Vault's TLS certificate, self-signed (the cloud servers pin it), as
	# `edgeid up --host` makes it on a real host.
	tls="/render/$VAULT_HOST$STATE/vault/tls"
	if [ ! -s "$tls/vault.key" ]; then
		mkdir -p "$tls"
		(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$tls/vault.key" -out "$tls/vault.crt" -days 365 -subj "/CN=$VAULT_HOST" \
			-addext "subjectAltName=DNS:$VAULT_HOST,DNS:localhost,IP:127.0.0.1" \
			-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
			-addext "keyUsage=critical,digitalSignature,keyCertSign" \
			-addext "extendedKeyUsage=serverAuth" 2>/dev/null)
		chmod 0644 "$tls/vault.crt"
		log "created Vault's TLS certificate"
	fi
	for dir in /render/*/etc/kubeedge/certs; do
		[ -d "$dir" ] || continue
		host=${dir#/render/}
		issue_node_cert "$dir" "${host%%/*}"
	done

	# The age identity the managed Vault's unseal share is encrypted to.
	id="/render/$VAULT_HOST$STATE/vault/unseal-identity.txt"
	if [ ! -s "$id" ]; then
		age-keygen -o "$id" 2>/dev/null
		chmod 0600 "$id"
		log "created Vault's unseal identity"
	fi

	# Owners and modes, as `edgeid up` sets them: what ownership.txt lists
	# for every directory and file render wrote, then the files this step
	# made. The control plane (61000) reads its node key and Vault's TLS
	# key; the unseal identity stays root's.
	for host in /render/*/ownership.txt; do
		[ -f "$host" ] || continue
		apply_ownership "${host%/ownership.txt}" "$host"
	done
	for dir in /render/*/etc/kubeedge/certs; do
		[ -d "$dir" ] || continue
		chown -R "$CONTROL" "$dir"
	done
	chown -R "$CONTROL" "/render/$VAULT_HOST$STATE/vault/tls" "/render/$VAULT_HOST$STATE/vault/data"
	chown 0:0 "$id"
}

# apply_ownership ROOT FILE applies ownership.txt lines (mode, uid:gid,
# path; directories end in /) to the paths under ROOT.
apply_ownership() {
	root=$1
	grep -v '^#' "$2" | while IFS="$(printf '\t')" read -r mode owner path; do
		[ -n "$path" ] || continue
		case "$path" in
		*/) mkdir -p "$root$path" ;;
		esac
		[ -e "$root$path" ] || continue
		chown "$owner" "$root$path"
		chmod "$mode" "$root$path"
	done
}

vault_bootstrap() {
	conf=$STATE/vault/bootstrap.hcl
	if grep -q '^[[:space:]]*age_recipients = \[\]' "$conf"; then
		# `edgeid render` leaves the recipient to the deployment: fill in
		# the one of the identity made by the render step.
		recipient=$(age-keygen -y "$STATE/vault/unseal-identity.txt")
		sed "s|^\([[:space:]]*\)age_recipients = \[\]|\1age_recipients = [\"$recipient\"]|" "$conf" >"$STATE/vault/bootstrap-compose.hcl"
		conf=$STATE/vault/bootstrap-compose.hcl
	fi
	"$BIN/edgeid" bootstrap vault --config "$conf"
	# The cloud server reads its AppRole login as the control plane.
	chown -R "$CONTROL" "$STATE/vault/bootstrap"
}

enroll_cloud() {
	server=$STATE/run/private/server.sock
	wait_healthy server "$server"
	td=$(hcl_value "$STATE/spire/server.conf" trust_domain)

	# Bootstrap bundle of every agent that attests to the cloud.
	"$BIN/spire-server" bundle show -socketPath "$server" >"$STATE/spire/bootstrap-cloud.pem"
	for edge in /hosts/*; do
		[ -d "$edge" ] || continue
		cp "$STATE/spire/bootstrap-cloud.pem" "$edge$STATE/spire/bootstrap-cloud.pem"
	done

	# The cloud host's agent joins once with a token; afterwards it renews
	# the SVID kept in its data_dir.
	if [ ! -s "$STATE/spire/join-token" ]; then
		"$BIN/spire-server" token generate -socketPath "$server" -ttl 3600 \
			-spiffeID "spiffe://$td/cloud/agent/$EDGEID_HOST" | sed -n 's/^Token: //p' >"$STATE/spire/join-token"
		chmod 0600 "$STATE/spire/join-token"
		chown "$CONTROL" "$STATE/spire/join-token"
	fi

	# The entries `edgeid render` planned for this server (each site's edge
	# server, a downstream workload of its node's cloud agent).
	"$BIN/edgeid" register --entries "$STATE/spire/entries.json" --socket "$server" --spire-server "$BIN/spire-server"

	# The Kafka broker's identity, fetched by its edgeid-helper sidecar (uid
	# 1000). DNS SAN "cloud": clients verify the broker's host name.
	ensure_entry "$server" "spiffe://$td/cloud/kafka" \
		-parentID "spiffe://$td/cloud/agent/$EDGEID_HOST" \
		-selector unix:uid:1000 -selector "unix:path:$BIN/edgeid-helper" -dns "$EDGEID_HOST"
}

enroll_site() {
	server=$STATE/run/private/server.sock
	wait_healthy server "$server"
	"$BIN/spire-server" bundle show -socketPath "$server" >"$STATE/spire/bootstrap-site.pem"

	# The site's workload entries `edgeid render` planned, one per
	# workload on any node of the site, with the selectors the deepstream
	# attestor reports: app, the rendered config's hash, its topics.
	"$BIN/edgeid" register --entries "$STATE/spire/entries.json" --socket "$server" --spire-server "$BIN/spire-server"
}

case "${1:-}" in
render) render ;;
vault-bootstrap) vault_bootstrap ;;
enroll-cloud) enroll_cloud ;;
enroll-site) enroll_site ;;
*)
	echo "usage: edgeid-compose.sh render|vault-bootstrap|enroll-cloud|enroll-site" >&2
	exit 2
	;;
esac
