package health

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

type fakeChecker struct{ ready atomic.Bool }

func (f *fakeChecker) Live() error { return nil }
func (f *fakeChecker) Ready() error {
	if f.ready.Load() {
		return nil
	}
	return errors.New("no SVID on disk yet")
}

func TestRegistryText(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("edgeid_helper_rotations_total", "Rotations written.")
	b := r.NewCounter("edgeid_helper_tunnel_bytes_total", "Bytes.", "tunnel", "direction")
	g := r.NewGauge("edgeid_helper_tunnel_active_connections", "Open.", "tunnel")
	r.NewGaugeFunc("edgeid_helper_svid_expiry_seconds", "Seconds to expiry.", func() float64 { return 12.5 })
	r.NewGaugeFunc("edgeid_helper_absent", "Left out.", func() float64 { return math.NaN() })
	c.Inc()
	c.Inc()
	b.Add(100, "mqtt", "in")
	b.Add(5, `we"ird`, "out")
	g.Add(1, "mqtt")
	g.Add(-1, "mqtt")
	var sb strings.Builder
	if err := r.Write(&sb); err != nil {
		t.Fatal(err)
	}
	want := `# HELP edgeid_helper_rotations_total Rotations written.
# TYPE edgeid_helper_rotations_total counter
edgeid_helper_rotations_total 2
# HELP edgeid_helper_tunnel_bytes_total Bytes.
# TYPE edgeid_helper_tunnel_bytes_total counter
edgeid_helper_tunnel_bytes_total{tunnel="mqtt",direction="in"} 100
edgeid_helper_tunnel_bytes_total{tunnel="we\"ird",direction="out"} 5
# HELP edgeid_helper_tunnel_active_connections Open.
# TYPE edgeid_helper_tunnel_active_connections gauge
edgeid_helper_tunnel_active_connections{tunnel="mqtt"} 0
# HELP edgeid_helper_svid_expiry_seconds Seconds to expiry.
# TYPE edgeid_helper_svid_expiry_seconds gauge
edgeid_helper_svid_expiry_seconds 12.5
# HELP edgeid_helper_absent Left out.
# TYPE edgeid_helper_absent gauge
`
	if sb.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", sb.String(), want)
	}
}

func TestServer(t *testing.T) {
	chk := &fakeChecker{}
	reg := NewRegistry()
	reg.NewCounter("edgeid_helper_rotations_total", "Rotations.").Inc()
	s, err := NewServer(Config{Addr: "127.0.0.1:0", LivenessPath: "/live", ReadinessPath: "/ready"}, chk, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/live"} {
		if code, _ := get(p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	for _, p := range []string{"/readyz", "/ready"} {
		if code, body := get(p); code != 503 || !strings.Contains(body, "no SVID on disk yet") {
			t.Errorf("%s before ready: %d %s", p, code, body)
		}
	}
	chk.ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("readyz after ready: %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "edgeid_helper_rotations_total 1\n") {
		t.Errorf("metrics: %d %s", code, body)
	}
}
