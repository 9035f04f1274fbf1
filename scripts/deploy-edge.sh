#!/usr/bin/env bash
# deploy-edge.sh ENV_FILE brings up this edge node's part of the topology:
# on a site's server node, the cloud agent (kubeedge attestation to the
# cloud) and the nested edge SPIRE server; on every node, the edge agent
# and the workloads under edgeid-helper; then keeps them running. Deploy
# the cloud first and copy its trust bundle here (EDGEID_TRUST_BUNDLE).
#
#   deploy-edge.sh conf/deploy/edge.env           deploy or converge
#   deploy-edge.sh --status conf/deploy/edge.env  what runs
#   deploy-edge.sh --stop conf/deploy/edge.env    stop everything
set -euo pipefail
# shellcheck source=scripts/lib/deploy.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/deploy.sh"
deploy_main edge "$@"
