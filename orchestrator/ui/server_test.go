package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/orchestrator/runner"
)

// fakeSource serves a status whose workload serial the test changes.
type fakeSource struct {
	mu     sync.Mutex
	serial string
	err    error
}

func (f *fakeSource) set(serial string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serial, f.err = serial, err
}

func (f *fakeSource) Status(context.Context) (*runner.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	return &runner.Status{
		TrustDomain: "example.org",
		Sites: []runner.SiteStatus{{Name: "site-a", Workloads: []runner.WorkloadStatus{{
			Name: "cam", SPIFFEID: "spiffe://example.org/edge/site-a/cam", Running: true, Serial: f.serial, SVIDExpires: &exp,
		}}}},
		Kafka: &runner.KafkaStatus{Messages: map[string]int{"spiffe://example.org/edge/site-a/cam": 3, "spiffe://example.org/edge/site-a/other": 2}},
	}, nil
}

// events reads the "status" events of an SSE stream into a channel.
func events(t *testing.T, body io.Reader) <-chan Snapshot {
	t.Helper()
	out := make(chan Snapshot, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "status":
				var s Snapshot
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil {
					t.Errorf("event data: %v: %s", err, line)
					return
				}
				out <- s
			}
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan Snapshot, within time.Duration) Snapshot {
	t.Helper()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return s
	case <-time.After(within):
		t.Fatalf("no status event within %s", within)
	}
	return Snapshot{}
}

func workloadSerial(s Snapshot) string {
	if s.Status == nil || len(s.Status.Sites) == 0 || len(s.Status.Sites[0].Workloads) == 0 {
		return ""
	}
	return s.Status.Sites[0].Workloads[0].Serial
}

// The event stream sends the current snapshot at once, then one event per
// change of the status (a new serial, with its rotation time), nothing
// while the status stays the same, and the source's error when it fails.
func TestEventsStreamEveryChangeOnce(t *testing.T) {
	src := &fakeSource{serial: "1001"}
	srv := New(Config{Source: src, Interval: 20 * time.Millisecond, Heartbeat: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	ch := events(t, resp.Body)

	first := next(t, ch, 5*time.Second)
	if got := workloadSerial(first); got != "1001" {
		t.Fatalf("first event serial %q, want 1001", got)
	}
	if first.KafkaBySite["site-a"] != 5 {
		t.Errorf("kafka_by_site = %v, want site-a: 5", first.KafkaBySite)
	}
	if len(first.Rotations) != 0 {
		t.Errorf("rotations before any change: %v", first.Rotations)
	}
	// Ten polls of an unchanged status send nothing.
	select {
	case s := <-ch:
		t.Fatalf("an event for an unchanged status: serial %s", workloadSerial(s))
	case <-time.After(200 * time.Millisecond):
	}

	src.set("1002", nil)
	second := next(t, ch, 5*time.Second)
	if got := workloadSerial(second); got != "1002" {
		t.Fatalf("after the rotation the event carries serial %q, want 1002", got)
	}
	if _, ok := second.Rotations["workload:spiffe://example.org/edge/site-a/cam"]; !ok {
		t.Errorf("no rotation time for the workload after its serial changed: %v", second.Rotations)
	}

	src.set("1002", errors.New("spire-server: connection refused"))
	third := next(t, ch, 5*time.Second)
	if third.Error == "" || third.Status != nil {
		t.Fatalf("a failing source gives error %q, status %v", third.Error, third.Status)
	}

	// /api/status has the latest snapshot.
	r2, err := http.Get(hs.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Body.Close()
	var latest Snapshot
	if err := json.NewDecoder(r2.Body).Decode(&latest); err != nil || latest.Error != third.Error {
		t.Fatalf("/api/status: %v, error %q, want %q", err, latest.Error, third.Error)
	}
}

// The page and its script are served from the binary; a request whose
// Host is not a loopback name is refused unless remote access is allowed.
func TestPageAndHostCheck(t *testing.T) {
	src := &fakeSource{serial: "1"}
	for _, tc := range []struct {
		allowRemote bool
		host, path  string
		code        int
		body        string
	}{
		{false, "127.0.0.1:8443", "/", http.StatusOK, `src="app.js"`},
		{false, "localhost:8443", "/app.js", http.StatusOK, "new EventSource"},
		{false, "[::1]:8443", "/style.css", http.StatusOK, ".tree"},
		{false, "attacker.example:8443", "/api/status", http.StatusMisdirectedRequest, "loopback"},
		{false, "10.0.0.5", "/", http.StatusMisdirectedRequest, "loopback"},
		{true, "10.0.0.5:8443", "/", http.StatusOK, "trust tree"},
		{false, "127.0.0.1", "/api/status", http.StatusServiceUnavailable, "no status"},
	} {
		srv := New(Config{Source: src, AllowRemote: tc.allowRemote})
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Host = tc.host
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("GET %s Host %s (allow remote %v): %d %q; want %d with %q", tc.path, tc.host, tc.allowRemote, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr        string
		allowRemote bool
		ok          bool
	}{
		{"127.0.0.1:8443", false, true},
		{"127.0.0.2:0", false, true},
		{"[::1]:8443", false, true},
		{"localhost:8443", false, true},
		{":8443", false, false},
		{"0.0.0.0:8443", false, false},
		{"192.168.1.10:8443", false, false},
		{"edge.example:8443", false, false},
		{"0.0.0.0:8443", true, true},
		{"127.0.0.1", false, false},
	} {
		err := CheckListen(tc.addr, tc.allowRemote)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListen(%q, %v) = %v, want ok %v", tc.addr, tc.allowRemote, err, tc.ok)
		}
	}
}
