package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeChecker struct{ ready atomic.Bool }

func (f *fakeChecker) Live() error { return nil }
func (f *fakeChecker) Ready() error {
	if f.ready.Load() {
		return nil
	}
	return errors.New("no SVID on disk yet")
}

func TestServer(t *testing.T) {
	chk := &fakeChecker{}
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeid_helper_rotations_total", Help: "Rotations."})
	reg.MustRegister(c)
	c.Inc()
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
