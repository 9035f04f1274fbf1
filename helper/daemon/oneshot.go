package daemon

// One-shot mode (daemon_mode = false): fetch once, write, exit.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/edgeid/edgeid/helper/svidwriter"
)

// RunOnce fetches once, writes every configured file, and returns.
func (d *Daemon) RunOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.WorkloadAPITimeout)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(workloadAPIAddr(d.cfg.AgentAddress)))
	if err != nil {
		return fmt.Errorf("daemon: workload API client: %w", err)
	}
	defer client.Close()
	d.client = client
	var errs []error
	if d.writer != nil {
		c, err := retryFetch(ctx, client.FetchX509Context)
		if err != nil {
			return fmt.Errorf("daemon: fetch X.509 SVID: %w", err)
		}
		svid, err := svidwriter.Select(c, d.cfg.Hint, d.cfg.SPIFFEID)
		if err != nil {
			return err
		}
		if err := d.publish(svid, c); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		if err := d.writer.Settle(); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.log.Info("X.509 SVID written", "spiffe_id", svid.ID.String(), "cert_dir", d.cfg.CertDir)
	}
	if d.cfg.JWTBundleFileName != "" {
		set, err := retryFetch(ctx, client.FetchJWTBundles)
		if err == nil {
			err = d.writeJWTBundles(set)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("daemon: JWT bundle: %w", err))
		}
	}
	for _, j := range d.cfg.JWTSVIDs {
		if _, err := d.writeJWTSVID(ctx, j); err != nil {
			errs = append(errs, fmt.Errorf("daemon: JWT SVID for audience %q: %w", j.Audience, err))
		}
	}
	return errors.Join(errs...)
}

// retryFetch retries until ctx ends: right after registration the agent
// answers PermissionDenied until it has the entry.
func retryFetch[T any](ctx context.Context, fetch func(context.Context) (T, error)) (T, error) {
	delay := 50 * time.Millisecond
	for {
		v, err := fetch(ctx)
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, err
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}
