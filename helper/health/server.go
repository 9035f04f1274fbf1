package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Checker reports the helper's state.
type Checker interface {
	// Live returns nil while the helper works.
	Live() error
	// Ready returns nil once a valid SVID is on disk and every tunnel
	// listens.
	Ready() error
}

// Config is the endpoint server's configuration.
type Config struct {
	// Addr is host:port; port 0 picks one.
	Addr string
	// LivenessPath and ReadinessPath are extra paths (spiffe-helper's
	// /live and /ready by default) answering like /healthz and /readyz.
	LivenessPath  string
	ReadinessPath string
}

// AlwaysOK is the Checker of a program whose endpoint answering is all
// there is to its health (the cloud Kafka gateway, edgeid supervise).
type AlwaysOK struct{}

// Live returns nil.
func (AlwaysOK) Live() error { return nil }

// Ready returns nil.
func (AlwaysOK) Ready() error { return nil }

// Server serves the endpoints.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// NewServer binds cfg.Addr and returns a server ready to Serve.
func NewServer(cfg Config, checker Checker, metrics prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("health: listen: %w", err)
	}
	mux := http.NewServeMux()
	live := func(w http.ResponseWriter, _ *http.Request) { respond(w, checker.Live()) }
	ready := func(w http.ResponseWriter, _ *http.Request) { respond(w, checker.Ready()) }
	mux.HandleFunc("GET /healthz", live)
	mux.HandleFunc("GET /readyz", ready)
	if p := cfg.LivenessPath; p != "" && p != "/healthz" && p != "/readyz" && p != "/metrics" {
		mux.HandleFunc("GET "+p, live)
	}
	if p := cfg.ReadinessPath; p != "" && p != "/healthz" && p != "/readyz" && p != "/metrics" && p != cfg.LivenessPath {
		mux.HandleFunc("GET "+p, ready)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	return &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      10 * time.Second,
		},
	}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	})
	defer stop()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health: %w", err)
	}
	return nil
}

type status struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func respond(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	st := status{Status: "ok"}
	code := http.StatusOK
	if err != nil {
		st = status{Status: "unavailable", Error: err.Error()}
		code = http.StatusServiceUnavailable
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(st)
}
