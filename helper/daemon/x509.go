package daemon

// X.509 SVIDs: the Workload API watch, and each update published as one
// version of the file set (SVID, key, bundle, combined PEM, PKCS#12, Kafka
// configs) before the managed program is told.

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgeid/edgeid/helper/atomicdir"
	"github.com/edgeid/edgeid/helper/svidwriter"
)

type x509Watcher struct{ d *Daemon }

func (w *x509Watcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.d.update(c) }

func (w *x509Watcher) OnX509ContextWatchError(err error) {
	if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "context canceled") {
		w.d.log.Warn("Workload API watch error; retrying", "error", err)
	}
	// The agent attested this helper but issued nothing: after an agent
	// restart a new stream is attested anew, and an app the helper
	// launched held at exec no longer proves its launch once it runs.
	// Launch it held again, so the retry can be attested.
	if status.Code(err) == codes.PermissionDenied && w.d.proc != nil {
		w.d.proc.Rehold()
	}
}

// update publishes one X.509 update: select, build, write, notify.
func (d *Daemon) update(c *workloadapi.X509Context) {
	received := time.Now()
	svid, err := svidwriter.Select(c, d.cfg.Hint, d.cfg.SPIFFEID)
	if err != nil {
		d.fail("select", err)
		return
	}
	d.src.set(svid, c.Bundles)
	leaf := svid.Certificates[0]
	if d.writer != nil {
		if err := d.publish(svid, c); err != nil {
			d.fail("write", err)
			return
		}
		d.x509Status.Store(statusWritten)
	}
	if d.proc != nil {
		d.proc.Rotated()
	}
	elapsed := time.Since(received)
	if d.writer != nil {
		// The directory fsync, the removal of old versions and the
		// preparation of the next version come after the program was told,
		// off the rotation's critical path.
		if err := d.writer.Settle(); err != nil {
			d.metrics.writeErrors.Inc("settle")
			d.log.Warn("Unable to settle the published files", "error", err)
		}
		if err := d.writer.Prepare(); err != nil {
			d.metrics.writeErrors.Inc("prepare")
			d.log.Warn("Unable to prepare the next version; the next rotation writes it whole", "error", err)
		}
	}
	d.metrics.rotations.Inc()
	d.metrics.rotationSeconds.Set(elapsed.Seconds())
	d.log.Info("X.509 SVID updated",
		"spiffe_id", svid.ID.String(),
		"serial", leaf.SerialNumber.Text(16),
		"expires_at", leaf.NotAfter.UTC().Format(time.RFC3339),
		"duration", elapsed.String(),
	)
	d.firstSVIDOnce.Do(func() { close(d.firstSVID) })
}

func (d *Daemon) fail(kind string, err error) {
	d.metrics.writeErrors.Inc(kind)
	if d.writer != nil {
		d.x509Status.Store(statusFailed)
	}
	d.log.Error("Unable to publish X.509 SVID update; keeping the previous files", "error", err)
}

// publish builds every file of the set and swaps it in.
func (d *Daemon) publish(svid *x509svid.SVID, c *workloadapi.X509Context) error {
	files, err := svidwriter.Files(svid, c.Bundles, d.svidOps)
	if err != nil {
		return err
	}
	if d.kafka != nil {
		kf, err := d.kafka.Files(svid.ID.String())
		if err != nil {
			return err
		}
		for _, f := range kf {
			files = append(files, atomicdir.File{Name: f.Name, Data: f.Data, Mode: f.Mode})
		}
	}
	_, err = d.writer.Write(files)
	return err
}
