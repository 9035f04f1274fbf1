#!/usr/bin/env bash
# install-deps.sh installs the Debian packages edgeid's tests and demo run
# against, when they are missing: kcat (librdkafka, the Kafka client library
# DeepStream uses), mosquitto and its clients, openssl, PostgreSQL,
# iproute2 for the multi-host tests, a Java runtime (keytool), util-linux
# (setpriv), systemd's tools (systemd-analyze), python3 (the attack
# suite's Python pipeline) and Chromium (the `edgeid ui` page test drives
# it headless over the DevTools protocol). It needs root (apt-get).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have kcat || need+=(kcat)
have mosquitto || need+=(mosquitto)
have mosquitto_pub || need+=(mosquitto-clients)
have openssl || need+=(openssl)
have psql || need+=(postgresql-client)
if ! have initdb && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	need+=(postgresql)
fi
have ip || need+=(iproute2)
# keytool opens the helper's PKCS#12 stores as a Java Kafka client would;
# setpriv runs attack-suite processes as other uids; systemd-analyze checks
# the deploy scripts' unit.
have keytool || need+=(default-jre-headless)
have setpriv || need+=(util-linux)
have systemd-analyze || need+=(systemd)
# The attack suite runs a Python DeepStream pipeline with Debian's python3.
[[ -x /usr/bin/python3 ]] || need+=(python3)
# test/integration/ui loads the trust-tree page in headless Chromium.
have chromium || need+=(chromium)

if [[ ${#need[@]} -eq 0 ]]; then
	echo "install-deps: all Debian packages present"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: missing ${need[*]}; run as root (or install them) first" >&2
	exit 1
fi
echo "install-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
# Debian starts a mosquitto service on install; edgeid's tests run their own
# on loopback ports, so leave the packaged one stopped where systemd exists.
if have systemctl && [[ -d /run/systemd/system ]]; then
	systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
