#!/usr/bin/env bash
# deploy-cloud.sh ENV_FILE brings up this cloud host's part of the topology:
# the managed Vault and its bootstrap (on the Vault host), a cloud SPIRE
# server (vault_pki upstream; several share PostgreSQL in HA), the cloud
# agent and the demo Kafka broker, then keeps them running. It leaves the
# trust bundle for the edge hosts in <root>/export/trust-bundle.pem. A managed
# Vault needs unseal custody in the topology (vault.seal_transit or
# vault.unseal_custodians; see orchestrator/README.md), or it is refused.
#
#   deploy-cloud.sh conf/deploy/cloud.env           deploy or converge
#   deploy-cloud.sh --status conf/deploy/cloud.env  what runs
#   deploy-cloud.sh --stop conf/deploy/cloud.env    stop everything
set -euo pipefail
# shellcheck source=scripts/lib/deploy.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/deploy.sh"
deploy_main cloud "$@"
