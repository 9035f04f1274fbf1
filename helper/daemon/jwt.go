package daemon

// JWT SVIDs and bundles, written as spiffe-helper writes them.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/edgeid/edgeid/helper/atomicdir"
	"github.com/edgeid/edgeid/helper/config"
)

type jwtBundleWatcher struct{ d *Daemon }

func (w *jwtBundleWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	if err := w.d.writeJWTBundles(set); err != nil {
		w.d.metrics.writeErrors.WithLabelValues("jwt_bundle").Inc()
		w.d.log.Error("Unable to write JWT bundle", "error", err)
	}
}

func (w *jwtBundleWatcher) OnJWTBundlesWatchError(err error) {
	if !strings.Contains(err.Error(), "context canceled") {
		w.d.log.Warn("Workload API JWT bundle watch error; retrying", "error", err)
	}
}

// writeJWTBundles writes the bundles as spiffe-helper does: a JSON object of
// trust domain name to base64 of the JWKS document.
func (d *Daemon) writeJWTBundles(set *jwtbundle.Set) error {
	out := map[string]string{}
	for _, b := range set.Bundles() {
		raw, err := b.Marshal()
		if err != nil {
			return err
		}
		out[b.TrustDomain().Name()] = base64.StdEncoding.EncodeToString(raw)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	name := d.cfg.JWTBundleFileName
	if err := atomicdir.WriteFile(filepath.Join(d.cfg.CertDir, name), data, d.cfg.JWTBundleFileMode); err != nil {
		d.jwtStatus.Store(name, statusFailed)
		return err
	}
	d.jwtStatus.Store(name, statusWritten)
	d.log.Info("JWT bundle updated", "file", name)
	return nil
}

// writeJWTSVID fetches one JWT SVID and writes the token.
func (d *Daemon) writeJWTSVID(ctx context.Context, j config.JWTSVID) (*jwtsvid.SVID, error) {
	svids, err := retryFetch(ctx, func(ctx context.Context) ([]*jwtsvid.SVID, error) {
		return d.client.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: j.Audience, ExtraAudiences: j.ExtraAudiences})
	})
	if err != nil {
		d.jwtStatus.Store(j.FileName, statusFailed)
		return nil, err
	}
	svid := svids[0]
	if d.cfg.Hint != "" {
		svid = nil
		for _, s := range svids {
			if s.Hint == d.cfg.Hint {
				svid = s
			}
		}
		if svid == nil {
			d.jwtStatus.Store(j.FileName, statusFailed)
			return nil, fmt.Errorf("no JWT SVID has hint %q", d.cfg.Hint)
		}
	}
	if err := atomicdir.WriteFile(filepath.Join(d.cfg.CertDir, j.FileName), []byte(svid.Marshal()), d.cfg.JWTSVIDFileMode); err != nil {
		d.jwtStatus.Store(j.FileName, statusFailed)
		return nil, err
	}
	d.jwtStatus.Store(j.FileName, statusWritten)
	d.log.Info("JWT SVID updated", "audience", j.Audience, "spiffe_id", svid.ID.String(), "expires_at", svid.Expiry.UTC().Format(time.RFC3339))
	return svid, nil
}

// refreshJWTSVID keeps one JWT SVID fresh: again at half its lifetime, with
// backoff on errors.
func (d *Daemon) refreshJWTSVID(ctx context.Context, j config.JWTSVID) {
	backoff := time.Second
	for {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		svid, err := d.writeJWTSVID(fctx, j)
		cancel()
		var wait time.Duration
		if err != nil {
			d.metrics.writeErrors.WithLabelValues("jwt_svid").Inc()
			d.log.Error("Unable to update JWT SVID", "audience", j.Audience, "error", err)
			wait = backoff
			backoff = min(backoff*2, time.Minute)
		} else {
			backoff = time.Second
			wait = time.Until(svid.Expiry)/2 + time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
