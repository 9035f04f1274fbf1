package runner

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/edgeid/edgeid/internal/svidsource"
	"github.com/edgeid/edgeid/internal/tlspolicy"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// StatusPath is where a host's status endpoint serves its Status.
const StatusPath = "/status"

// svidSource is an X.509 SVID and the bundles that verify peers.
type svidSource interface {
	x509svid.Source
	x509bundle.Source
}

// statusServerTLS admits only client (the orchestrator's SPIFFE ID), with
// src's SVID: TLS 1.2+ with ECDHE + AES-GCM on 1.2, the tunnel's suites.
func statusServerTLS(src svidSource, client spiffeid.ID) *tls.Config {
	cfg := tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeID(client))
	cfg.MinVersion, cfg.CipherSuites = tls.VersionTLS12, tlspolicy.CipherSuites
	return cfg
}

// statusClientTLS presents src's SVID and accepts only server.
func statusClientTLS(src svidSource, server spiffeid.ID) *tls.Config {
	cfg := tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(server))
	cfg.MinVersion, cfg.CipherSuites = tls.VersionTLS12, tlspolicy.CipherSuites
	return cfg
}

// agentSVID is the SVID of one SPIFFE ID from a host's agent, once the
// agent issues it: until then, and while the agent offers only other IDs,
// a handshake that needs it fails.
type agentSVID struct {
	want spiffeid.ID
	src  atomic.Pointer[svidsource.Source]
}

// GetX509SVID returns the wanted SVID, never another the agent offers.
func (a *agentSVID) GetX509SVID() (*x509svid.SVID, error) {
	s := a.src.Load()
	if s == nil {
		return nil, fmt.Errorf("runner: no SVID for %s from the agent yet", a.want)
	}
	svid, err := s.GetX509SVID()
	if err != nil {
		return nil, err
	}
	if svid.ID != a.want {
		return nil, fmt.Errorf("runner: the agent offers no SVID for %s (its default is %s)", a.want, svid.ID)
	}
	return svid, nil
}

// GetX509BundleForTrustDomain returns the agent's bundle of td.
func (a *agentSVID) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s := a.src.Load()
	if s == nil {
		return nil, fmt.Errorf("runner: no bundle from the agent yet")
	}
	return s.GetX509BundleForTrustDomain(td)
}

// watch connects to the Workload API at addr, retrying every wait until
// the agent answers, and keeps the stream until ctx ends.
func (a *agentSVID) watch(ctx context.Context, addr string, wait time.Duration, logf func(string, ...any)) {
	for ctx.Err() == nil {
		s, err := svidsource.New(ctx, addr, a.want, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			logf("%s supervise: status endpoint: waiting for %s: %v", time.Now().Format(time.RFC3339), a.want, err)
			continue
		}
		a.src.Store(s)
		<-ctx.Done()
		s.Close()
	}
}

// statusHandler serves GET StatusPath with what read returns, as JSON.
func statusHandler(read func(context.Context) *Status) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(StatusPath, func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(read(req.Context()))
	})
	return mux
}

// serveStatus serves h over TLS on ln until ctx ends.
func serveStatus(ctx context.Context, ln net.Listener, cfg *tls.Config, h http.Handler, logf func(string, ...any)) {
	// Refused handshakes (another client ID) land in the supervisor's
	// log through the server's default error log.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: time.Minute}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	go func() {
		if err := srv.Serve(tls.NewListener(ln, cfg)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("%s supervise: status endpoint %s stopped: %v", time.Now().Format(time.RFC3339), ln.Addr(), err)
		}
	}()
}

// serveStatusEndpoints starts the status endpoint of every local host
// that has one: bound now (a port in use is an error), served with the
// host's SVID once its agent issues it, to the orchestrator only.
func (r *Runner) serveStatusEndpoints(ctx context.Context) error {
	orch := r.plan.Orchestrator
	if orch == nil {
		return nil
	}
	client, err := spiffeid.FromString(orch.ID)
	if err != nil {
		return fmt.Errorf("runner: orchestrator ID: %w", err)
	}
	for _, h := range r.plan.Hosts {
		if !r.isLocal(h.Name) || h.Status == nil {
			continue
		}
		id, err := spiffeid.FromString(h.Status.ID)
		if err != nil {
			return fmt.Errorf("runner: status ID of %s: %w", h.Name, err)
		}
		ln, err := net.Listen("tcp", h.Status.Listen)
		if err != nil {
			return fmt.Errorf("runner: status endpoint of %s on %s: %w", h.Name, h.Status.Listen, err)
		}
		src := &agentSVID{want: id}
		go src.watch(ctx, "unix://"+h.Status.Socket, 30*time.Second, r.logf)
		host := h.Name
		serveStatus(ctx, ln, statusServerTLS(src, client), statusHandler(func(ctx context.Context) *Status {
			return r.hostStatus(ctx, host)
		}), r.logf)
		r.logf("%s supervise: status of %s on https://%s%s as %s, for %s only", time.Now().Format(time.RFC3339), host, h.Status.Listen, StatusPath, id, client)
	}
	return nil
}

// hostStatus is the Status of one host of the run, with its problems.
func (r *Runner) hostStatus(ctx context.Context, host string) *Status {
	cfg := r.cfg
	cfg.Host = host
	view := &Runner{cfg: cfg, top: r.top, plan: r.plan, env: r.env, privsep: r.privsep, launch: r.launch, cp: r.cp}
	st := view.Status(ctx)
	st.Problems = view.Check(st, time.Now())
	return st
}

// setOrchestratorIdentity says whose processes the status identities are
// issued to: edgeid's account (root, or the invoking user with
// --single-uid) and program, in an embedded run the one in BinDir (which
// runs `up`, `supervise` and `status`; services run a staged copy), on a
// real host the installed one.
func (r *Runner) setOrchestratorIdentity() {
	if !r.privsep {
		r.env.OrchestratorAccount = render.Account{UID: os.Getuid(), GID: os.Getgid()}
	}
	if r.cfg.Host != "" {
		return
	}
	exe, err := filepath.Abs(r.edgeidExe)
	if err != nil {
		return
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	r.env.OrchestratorExe = exe
}
