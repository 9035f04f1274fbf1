package daemon

// X.509 SVIDs: the Workload API watch, and each update published as one
// version of the file set (SVID, key, bundle, combined PEM, PKCS#12, Kafka
// configs) before the managed program is told.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgeid/edgeid/helper/atomicdir"
	"github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/helper/kafkaconf"
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
		d.metrics.rotation.WithLabelValues("swap").Observe(time.Since(received).Seconds())
	}
	if d.proc != nil {
		d.proc.Rotated()
	}
	elapsed := time.Since(received)
	d.metrics.rotation.WithLabelValues("signal").Observe(elapsed.Seconds())
	if d.writer != nil {
		// The directory fsync, the removal of old versions and the
		// preparation of the next version come after the program was told,
		// off the rotation's critical path.
		if err := d.writer.Settle(); err != nil {
			d.metrics.writeErrors.WithLabelValues("settle").Inc()
			d.log.Warn("Unable to settle the published files", "error", err)
		}
		if err := d.writer.Prepare(); err != nil {
			d.metrics.writeErrors.WithLabelValues("prepare").Inc()
			d.log.Warn("Unable to prepare the next version; the next rotation writes it whole", "error", err)
		}
	}
	d.metrics.rotations.Inc()
	d.log.Info("X.509 SVID updated",
		"spiffe_id", svid.ID.String(),
		"serial", leaf.SerialNumber.Text(16),
		"expires_at", leaf.NotAfter.UTC().Format(time.RFC3339),
		"duration", elapsed.String(),
	)
	d.firstSVIDOnce.Do(func() { close(d.firstSVID) })
}

func (d *Daemon) fail(kind string, err error) {
	d.metrics.writeErrors.WithLabelValues(kind).Inc()
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

// setupX509 prepares what every X.509 update writes: the file set in
// cert_dir, the PKCS#12 password and the Kafka client configs.
func (d *Daemon) setupX509(getenv func(string) string) error {
	c := d.cfg
	w, err := atomicdir.New(c.CertDir)
	if err != nil {
		return fmt.Errorf("daemon: cert_dir: %w", err)
	}
	d.writer = w
	d.svidOps = svidwriter.Options{
		SVIDFileName:             c.SVIDFileName,
		KeyFileName:              c.SVIDKeyFileName,
		BundleFileName:           c.SVIDBundleFileName,
		CombinedPEMFileName:      c.CombinedPEMFileName,
		AddIntermediatesToBundle: c.AddIntermediatesToBundle,
		IncludeFederatedDomains:  c.IncludeFederatedDomains,
		OmitExpired:              c.OmitExpired,
		CertFileMode:             c.CertFileMode,
		KeyFileMode:              c.KeyFileMode,
	}
	if p := c.PKCS12; p != nil {
		pw, err := storePassword(p, getenv)
		if err != nil {
			return err
		}
		d.svidOps.PKCS12 = &svidwriter.PKCS12Options{
			KeystoreFileName: p.KeystoreFileName, TruststoreFileName: p.TruststoreFileName,
			Password: pw, Legacy: p.Legacy,
		}
	}
	if c.Kafka != nil {
		k, err := kafkaconf.NewRenderer(d.kafkaConfig())
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.kafka = k
	}
	return nil
}

// kafkaConfig is what the Kafka client configs point at: the files of the
// set the helper writes, through the version-independent paths.
func (d *Daemon) kafkaConfig() kafkaconf.RendererConfig {
	c, k := d.cfg, d.cfg.Kafka
	rc := kafkaconf.RendererConfig{
		Paths: kafkaconf.Paths{
			CA:   d.writer.Path(c.SVIDBundleFileName),
			Cert: d.writer.Path(c.SVIDFileName),
			Key:  d.writer.Path(c.SVIDKeyFileName),
		},
		Settings:   k.Settings,
		Librdkafka: k.Librdkafka, DeepStream: k.DeepStream, Java: k.Java,
		DeepStreamPartitionKey: k.DeepStreamPartitionKey,
		JavaKeystoreType:       k.JavaKeystoreType,
		CertMode:               c.CertFileMode,
		KeyMode:                c.KeyFileMode,
	}
	if c.CombinedPEMFileName != "" {
		rc.Paths.CombinedPEM = d.writer.Path(c.CombinedPEMFileName)
	}
	if p := d.svidOps.PKCS12; p != nil {
		if p.KeystoreFileName != "" {
			rc.Paths.Keystore = d.writer.Path(p.KeystoreFileName)
		}
		if p.TruststoreFileName != "" {
			rc.Paths.Truststore = d.writer.Path(p.TruststoreFileName)
		}
		rc.Password = p.Password
	}
	return rc
}

// storePassword reads the PKCS#12 password from its file or variable.
func storePassword(p *config.PKCS12, getenv func(string) string) (string, error) {
	switch {
	case p.PasswordFile != "":
		b, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("daemon: pkcs12 password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case p.PasswordEnv != "":
		v := getenv(p.PasswordEnv)
		if v == "" {
			return "", fmt.Errorf("daemon: pkcs12 password_env: variable %s is empty or unset", p.PasswordEnv)
		}
		return v, nil
	}
	return "", nil
}
