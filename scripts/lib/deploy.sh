# shellcheck shell=bash
# deploy.sh: what deploy-cloud.sh and deploy-edge.sh share. Both are thin
# wrappers over `edgeid up --host` (render this host's part of the
# topology, install it, start it in dependency order) plus a supervisor
# that keeps it running: a systemd unit where systemd runs, otherwise a
# detached `edgeid supervise`. Running a script again converges: unchanged
# services keep running, changed ones restart, and the supervisor is not
# duplicated.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

usage() {
	cat >&2 <<USAGE
usage: $(basename "$0") [--stop|--status|--unit] ENV_FILE   (--unit prints the systemd unit)

ENV_FILE sets (see conf/deploy/$1.env):
  EDGEID_TOPOLOGY      the topology file (the same on every host)
  EDGEID_HOST          this host's name in the topology
  EDGEID_ROOT          state directory              (default /var/lib/edgeid)
  EDGEID_BIN_DIR       edgeid, its plugins, SPIRE and Vault (default /opt/edgeid/bin)
  EDGEID_TRUST_BUNDLE  trust bundle copied from the cloud host (edge hosts, extra cloud hosts)
  EDGEID_KUBEEDGE_CA   cloudcore's CA (servers; default the topology's)
  EDGEID_NODE_CERT, EDGEID_NODE_KEY   edgecore's certificate and key (edge nodes)
  EDGEID_STEP_TIMEOUT  longest wait for one step   (default 2m)

A managed Vault must have unseal custody in the topology (vault.seal_transit
or vault.unseal_custodians); the script refuses it otherwise. With
custodians, a run that must unseal Vault (or make a root token for a changed
configuration) takes their age identities from EDGEID_VAULT_UNSEAL_IDENTITIES
in the environment of that one run, never from ENV_FILE; the supervisor does
not inherit them.
USAGE
	exit 2
}

# deploy_main ROLE ARGS... runs the deploy script of ROLE (cloud or edge).
deploy_main() {
	local role=$1
	shift
	local action=up
	case "${1:-}" in
	--stop) action=stop; shift ;;
	--status) action=status; shift ;;
	--unit) action=unit; shift ;;
	-h | --help) usage "$role" ;;
	esac
	[ $# -eq 1 ] || usage "$role"
	load_env "$1" "$role"
	case "$action" in
	up) deploy_up ;;
	stop) deploy_stop ;;
	status) deploy_status ;;
	unit) render_unit ;;
	esac
}

# load_env FILE ROLE reads the env file (shell assignments only) and checks it.
load_env() {
	local file=$1 role=$2
	[ -r "$file" ] || die "cannot read env file $file"
	set -a
	# shellcheck disable=SC1090
	. "$file"
	set +a
	: "${EDGEID_ROOT:=/var/lib/edgeid}"
	: "${EDGEID_BIN_DIR:=/opt/edgeid/bin}"
	: "${EDGEID_STEP_TIMEOUT:=2m}"
	# Custodians' identities must not be kept on the host, in this file least.
	if grep -q 'EDGEID_VAULT_UNSEAL_IDENTITIES\|AGE-SECRET-KEY-' "$file"; then
		die "$file names EDGEID_VAULT_UNSEAL_IDENTITIES or holds an age identity: custodians' identities never go on the Vault host; give them in the environment of the one run that needs them"
	fi
	[ -n "${EDGEID_TOPOLOGY:-}" ] || die "$file: set EDGEID_TOPOLOGY"
	[ -n "${EDGEID_HOST:-}" ] || die "$file: set EDGEID_HOST"
	[ -r "$EDGEID_TOPOLOGY" ] || die "cannot read topology $EDGEID_TOPOLOGY"
	EDGEID="$EDGEID_BIN_DIR/edgeid"
	[ -x "$EDGEID" ] || die "$EDGEID is missing: install edgeid's programs into $EDGEID_BIN_DIR first"
	if [ "$role" = edge ] && [ -z "${EDGEID_TRUST_BUNDLE:-}" ]; then
		die "$file: set EDGEID_TRUST_BUNDLE (copy <root>/export/trust-bundle.pem from the cloud host)"
	fi
	# Every edgeid command of this host gets the same flags.
	host_flags=(-f "$EDGEID_TOPOLOGY" --host "$EDGEID_HOST" --root "$EDGEID_ROOT" --bin-dir "$EDGEID_BIN_DIR")
	[ -z "${EDGEID_TRUST_BUNDLE:-}" ] || host_flags+=(--trust-bundle "$EDGEID_TRUST_BUNDLE")
	[ -z "${EDGEID_KUBEEDGE_CA:-}" ] || host_flags+=(--kubeedge-ca "$EDGEID_KUBEEDGE_CA")
	[ -z "${EDGEID_NODE_CERT:-}" ] || host_flags+=(--node-cert "$EDGEID_NODE_CERT")
	[ -z "${EDGEID_NODE_KEY:-}" ] || host_flags+=(--node-key "$EDGEID_NODE_KEY")
	unit="edgeid-$EDGEID_HOST"
}

have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# quote_args prints its arguments shell-quoted on one line.
quote_args() { printf '%q ' "$@"; }

# preflight renders this host's part of the topology into a throw-away
# directory, so that a topology edgeid refuses (a managed Vault without
# unseal custody, for one) stops the script with edgeid's error before a
# unit is installed or anything starts.
preflight() {
	local tmp
	tmp=$(mktemp -d)
	if ! "$EDGEID" render -f "$EDGEID_TOPOLOGY" --host "$EDGEID_HOST" --out "$tmp" \
		--plugin-dir "$EDGEID_BIN_DIR" --host-bin-dir "$EDGEID_BIN_DIR" --root "$EDGEID_ROOT" >/dev/null; then
		rm -rf "$tmp"
		die "edgeid refuses $EDGEID_TOPOLOGY for host $EDGEID_HOST (error above); nothing was installed or started"
	fi
	rm -rf "$tmp"
}

# render_unit prints the systemd unit of this host. edgeid runs as root:
# it starts Vault and SPIRE as the control account and every workload as
# its own, which needs setuid/setgid and the capabilities the agents keep.
# Everything else is locked down: the file system is read-only but for the
# state directory, no privilege can be regained through exec, and the
# capability bounding set holds only what edgeid and its services use.
render_unit() {
	cat <<UNIT
# Written by $(basename "$0") from $EDGEID_TOPOLOGY; run the script again to change it.
[Unit]
Description=edgeid host $EDGEID_HOST (SPIRE, Vault, edgeid-helper)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStartPre=$(quote_args "$EDGEID" up "${host_flags[@]}" --step-timeout "$EDGEID_STEP_TIMEOUT")
ExecStart=$(quote_args "$EDGEID" supervise "${host_flags[@]}")
ExecReload=$(quote_args "$EDGEID" up "${host_flags[@]}" --step-timeout "$EDGEID_STEP_TIMEOUT")
TimeoutStartSec=15min
Restart=always
RestartSec=5
KillMode=mixed

NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$EDGEID_ROOT
PrivateTmp=yes
ProtectHome=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_KILL
UMask=0077

[Install]
WantedBy=multi-user.target
UNIT
}

deploy_up() {
	preflight
	mkdir -p "$EDGEID_ROOT/logs"
	if have_systemd; then
		# The unit runs `up` before the supervisor, and again on reload,
		# so every service lives in the unit's cgroup.
		local tmp
		tmp=$(mktemp "/etc/systemd/system/.$unit.service.XXXXXX")
		render_unit >"$tmp"
		chmod 0644 "$tmp"
		mv -f "$tmp" "/etc/systemd/system/$unit.service"
		systemctl daemon-reload
		if systemctl is-active --quiet "$unit"; then
			systemctl reload "$unit"
		else
			systemctl enable --now "$unit"
		fi
		echo "$(basename "$0"): $EDGEID_HOST is up under systemd ($unit.service)"
		return
	fi
	"$EDGEID" up "${host_flags[@]}" --step-timeout "$EDGEID_STEP_TIMEOUT"
	# A detached supervisor restarts whatever stops; a second one exits at
	# once, so running this script again is harmless.
	# It must not keep open whatever this script inherited (a lock held by
	# flock(1), an ssh session's descriptors).
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done 2>/dev/null
		# Custodians' identities given to this run stay with it: the
		# long-lived supervisor must not carry them in its environment.
		exec env -u EDGEID_VAULT_UNSEAL_IDENTITIES setsid nohup "$EDGEID" supervise "${host_flags[@]}" --step-timeout "$EDGEID_STEP_TIMEOUT" \
			>>"$EDGEID_ROOT/logs/supervise.log" 2>&1 </dev/null
	) &
	echo "$(basename "$0"): $EDGEID_HOST is up; supervised by edgeid supervise (log: $EDGEID_ROOT/logs/supervise.log)"
}

deploy_stop() {
	if have_systemd && [ -f "/etc/systemd/system/$unit.service" ]; then
		systemctl disable --now "$unit"
	fi
	"$EDGEID" down "${host_flags[@]}"
}

deploy_status() {
	"$EDGEID" status "${host_flags[@]}"
}
