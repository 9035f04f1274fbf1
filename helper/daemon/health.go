package daemon

// Liveness and readiness, served with the metrics by package health.

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics returns the metrics registry.
func (d *Daemon) Metrics() *prometheus.Registry { return d.metrics.reg }

// HealthAddr is the bound health address once Run listens, else nil.
func (d *Daemon) HealthAddr() net.Addr {
	a, _ := d.healthAddr.Load().(net.Addr)
	return a
}

// Live reports whether the last writes succeeded (spiffe-helper's liveness).
func (d *Daemon) Live() error {
	if d.x509Status.Load() == statusFailed {
		return errors.New("the last X.509 write failed")
	}
	var err error
	d.jwtStatus.Range(func(k, v any) bool {
		if v == statusFailed {
			err = fmt.Errorf("the last write of %s failed", k)
			return false
		}
		return true
	})
	return err
}

// Ready reports whether a valid SVID is on disk and every tunnel listens.
func (d *Daemon) Ready() error {
	if d.writer != nil {
		if s := d.x509Status.Load(); s != statusWritten {
			return fmt.Errorf("X.509 SVID %s", s)
		}
	}
	if st := d.src.get(); st == nil {
		if d.writer != nil || len(d.tunnels) > 0 || len(d.gateways) > 0 {
			return errors.New("no X.509 SVID yet")
		}
	} else if time.Now().After(st.svid.Certificates[0].NotAfter) {
		return errors.New("the X.509 SVID has expired")
	}
	var err error
	d.jwtStatus.Range(func(k, v any) bool {
		if v != statusWritten {
			err = fmt.Errorf("%s %s", k, v)
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if !d.tunnelsUp.Load() {
		return errors.New("tunnels not listening yet")
	}
	if len(d.gateways) > 0 && !d.gatewaysUp.Load() {
		return errors.New("kafka gateways not listening yet")
	}
	return nil
}
