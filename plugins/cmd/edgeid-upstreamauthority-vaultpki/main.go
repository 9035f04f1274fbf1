// Command edgeid-upstreamauthority-vaultpki is the "vault_pki"
// UpstreamAuthority plugin binary. SPIRE server starts it through
// plugin_cmd; it is not meant to be run by hand.
package main

import (
	"github.com/edgeid/edgeid/plugins/server/upstreamauthority/vaultpki"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	upstreamauthorityv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/upstreamauthority/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

func main() {
	p := vaultpki.New()
	// Serve does not return: it exits the process when SPIRE unloads the
	// plugin.
	pluginmain.Serve(
		upstreamauthorityv1.UpstreamAuthorityPluginServer(p),
		configv1.ConfigServiceServer(p),
	)
}
