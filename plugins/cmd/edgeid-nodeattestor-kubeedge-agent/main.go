// Command edgeid-nodeattestor-kubeedge-agent is the agent side of SPIRE's
// NodeAttestor "kubeedge", loaded by spire-agent through plugin_cmd and
// plugin_checksum. It speaks the SPIRE plugin protocol on stdin/stdout and
// is not meant to be run by hand.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	nodeattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/nodeattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"

	"github.com/edgeid/edgeid/plugins/agent/nodeattestor/kubeedge"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		slog.Error("edgeid-nodeattestor-kubeedge-agent failed", "error", err)
		os.Exit(1)
	}
}

// run serves the plugin until SPIRE unloads it; pluginmain.Serve exits the
// process itself.
func run(_ context.Context, args []string) error {
	if len(args) > 0 {
		return errors.New("this program takes no arguments; SPIRE starts it as a plugin (plugin_cmd)")
	}
	p := kubeedge.New()
	pluginmain.Serve(
		nodeattestorv1.NodeAttestorPluginServer(p),
		configv1.ConfigServiceServer(p),
	)
	return nil
}
