package ui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/edgeid/edgeid/orchestrator/runner"
)

//go:embed static
var static embed.FS

// Source gives the status the page shows; the runner's Status and Check
// in edgeid, a fake in tests.
type Source interface {
	Status(ctx context.Context) (*runner.Status, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (*runner.Status, error)

// Status calls f.
func (f SourceFunc) Status(ctx context.Context) (*runner.Status, error) { return f(ctx) }

// Config configures a Server.
type Config struct {
	// Source is read every Interval (default 2s).
	Source   Source
	Interval time.Duration
	// AllowRemote serves requests whatever their Host header; otherwise
	// only loopback names are answered.
	AllowRemote bool
	// Heartbeat is how often an idle event stream gets a comment, so that
	// proxies and the browser keep it open (default 15s).
	Heartbeat time.Duration
	Logger    *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Server holds the latest snapshot and streams it to browsers.
type Server struct {
	cfg       Config
	rotations *rotations

	mu      sync.Mutex
	latest  []byte        // the latest snapshot, JSON
	status  []byte        // its status part, to tell a change
	changed chan struct{} // closed and replaced on every change
}

// New returns a Server; Run feeds it.
func New(cfg Config) *Server {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{cfg: cfg, rotations: newRotations(), changed: make(chan struct{})}
}

// Run reads the source now and then every Interval until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// refresh reads the source once and publishes the snapshot if the status
// changed.
func (s *Server) refresh(ctx context.Context) {
	st, err := s.cfg.Source.Status(ctx)
	if ctx.Err() != nil {
		return
	}
	snap := Snapshot{Time: s.cfg.Now().UTC()}
	if err != nil {
		snap.Error = err.Error()
		s.cfg.Logger.Warn("Cannot read the status", "error", err)
	} else {
		snap.Status = st
		snap.Rotations = s.rotations.observe(st, snap.Time)
		snap.KafkaBySite = kafkaBySite(st)
	}
	statusJSON, _ := json.Marshal(struct {
		S *runner.Status
		E string
		R map[string]time.Time
	}{snap.Status, snap.Error, snap.Rotations})
	data, err := json.Marshal(snap)
	if err != nil {
		s.cfg.Logger.Error("Cannot encode the status", "error", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(statusJSON, s.status) {
		return
	}
	s.latest, s.status = data, statusJSON
	close(s.changed)
	s.changed = make(chan struct{})
}

// current is the latest snapshot and a channel closed when it is replaced.
func (s *Server) current() ([]byte, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest, s.changed
}

// Handler serves the page, /api/status and /events.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(sub))
	mux.HandleFunc("GET /api/status", s.serveStatus)
	mux.HandleFunc("GET /events", s.serveEvents)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.AllowRemote && !loopbackRequestHost(r.Host) {
			http.Error(w, "this page answers only loopback names (start edgeid ui with --allow-remote otherwise)", http.StatusMisdirectedRequest)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) serveStatus(w http.ResponseWriter, _ *http.Request) {
	data, _ := s.current()
	if data == nil {
		http.Error(w, "no status read yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(data)
}

// serveEvents streams every snapshot, the latest first, as "status"
// events until the client leaves.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var sent []byte
	for {
		data, changed := s.current()
		if data != nil && !bytes.Equal(data, sent) {
			if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", data); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			sent = data
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// Serve runs the poller and serves the page on ln until ctx ends, then
// shuts the server down.
func Serve(ctx context.Context, ln net.Listener, s *Server) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = s.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = hs.Shutdown(shutdown)
	}()
	err := hs.Serve(ln)
	cancel()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
