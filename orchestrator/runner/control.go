package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// controlPlane is what the phases of up ask of the programs they start:
// whether a service is ready, the Vault bootstrap, and the SPIRE server
// calls. With the launcher it is the runner's seam to the outside: the
// real one (liveControl) uses the programs' sockets and CLIs, and the unit
// tests record its calls beside the launcher's starts to check the order
// of up.
type controlPlane interface {
	// ready reports whether a started service serves.
	ready(ctx context.Context, ref svcRef) error
	// bootstrapVault runs the Vault bootstrap with cfgPath and returns
	// its log.
	bootstrapVault(ctx context.Context, cfgPath string) (log []byte, err error)
	bundlePEM(ctx context.Context, server svcRef) ([]byte, error)
	joinToken(ctx context.Context, server svcRef, agentID string) (string, error)
	ensureEntries(ctx context.Context, server svcRef, entries []render.Entry) (EntryCounts, error)
}

// liveControl is the controlPlane of real programs.
type liveControl struct {
	bins render.Binaries
}

func (c liveControl) server(ref svcRef) serverCLI {
	return serverCLI{bin: c.bins.SpireServer, socket: ref.s.Socket}
}

// ready is each kind's readiness: Vault and Kafka accept connections, the
// SPIRE programs pass their healthcheck, a helper has written an SVID that
// is valid now.
func (c liveControl) ready(ctx context.Context, ref svcRef) error {
	switch ref.s.Kind {
	case render.KindSpireServer:
		return c.server(ref).healthy(ctx)
	case render.KindSpireAgent:
		return agentCLI{bin: c.bins.SpireAgent, socket: ref.s.Socket}.healthy(ctx)
	case render.KindHelper:
		return svidValid(ref.s.ReadyFile)
	default:
		return dial(ctx, ref.s.Addr)
	}
}

// bootstrapVault runs the Vault bootstrap in this process (root), its log
// kept for logs/bootstrap.log.
func (c liveControl) bootstrapVault(ctx context.Context, cfgPath string) ([]byte, error) {
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if _, err := vaultboot.RunFile(ctx, cfgPath, vaultboot.Options{Logger: logger}); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, lastLines(log.String(), 15))
	}
	return log.Bytes(), nil
}

func (c liveControl) bundlePEM(ctx context.Context, server svcRef) ([]byte, error) {
	return c.server(server).bundlePEM(ctx)
}

func (c liveControl) joinToken(ctx context.Context, server svcRef, agentID string) (string, error) {
	return c.server(server).joinToken(ctx, agentID)
}

func (c liveControl) ensureEntries(ctx context.Context, server svcRef, entries []render.Entry) (EntryCounts, error) {
	return c.server(server).ensureEntries(ctx, entries)
}
