// Command edgeid-workloadattestor-deepstream is the deepstream
// WorkloadAttestor plugin binary, loaded by a SPIRE agent with
// `plugin_cmd` and `plugin_checksum`.
package main

import (
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"

	"github.com/edgeid/edgeid/plugins/agent/workloadattestor/deepstream"
)

func main() {
	p := deepstream.New()
	pluginmain.Serve(
		workloadattestorv1.WorkloadAttestorPluginServer(p),
		configv1.ConfigServiceServer(p),
	)
}
