package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/edgeid/edgeid/orchestrator/runner"
)

// fleetStatus is `edgeid status --fleet`: every host's status, read from
// its status endpoint with the orchestrator's SVID.
func fleetStatus(ctx context.Context, r *runner.Runner, output string, check bool, timeout time.Duration, stdout io.Writer) error {
	if timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", ErrUsage)
	}
	f, err := r.FleetStatus(ctx, timeout)
	if err != nil {
		return err
	}
	switch {
	case output == "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(f); err != nil {
			return err
		}
	case check:
		for _, p := range f.Problems {
			fmt.Fprintln(stdout, p)
		}
		if len(f.Problems) == 0 {
			fmt.Fprintf(stdout, "ok: every host with a status endpoint read, no problem reported\n")
		}
	default:
		f.WriteTree(stdout)
	}
	if check && len(f.Problems) > 0 {
		return fmt.Errorf("status: %d problem(s)", len(f.Problems))
	}
	return nil
}
