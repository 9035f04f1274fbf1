package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/edgeid/edgeid/internal/svidsource"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// maxStatusBytes bounds what one host's status endpoint may send.
const maxStatusBytes = 8 << 20

// Fleet is every host's Status, as each host's status endpoint reports
// it to the orchestrator.
type Fleet struct {
	TrustDomain string `json:"trust_domain"`
	// Orchestrator is the SPIFFE ID the hosts were read with.
	Orchestrator string      `json:"orchestrator_id"`
	Hosts        []FleetHost `json:"hosts"`
	// Problems are every host's, prefixed with its name, and each host
	// that could not be read.
	Problems []string `json:"problems"`
}

// FleetHost is one host of the fleet.
type FleetHost struct {
	Host string `json:"host"`
	// Addr and SPIFFEID are its status endpoint's address and the ID it
	// must present; empty for a host with none.
	Addr     string  `json:"addr,omitempty"`
	SPIFFEID string  `json:"spiffe_id,omitempty"`
	Status   *Status `json:"status,omitempty"`
	// Error says why the host could not be read.
	Error string `json:"error,omitempty"`
	// Note explains a host without a status endpoint.
	Note string `json:"note,omitempty"`
}

// FleetStatus reads every host's status endpoint in parallel, each within
// timeout, with the orchestrator's SVID from the cloud host's agent. It
// runs on the cloud host (or in an embedded run).
func (r *Runner) FleetStatus(ctx context.Context, timeout time.Duration) (*Fleet, error) {
	orch := r.plan.Orchestrator
	if orch == nil {
		return nil, fmt.Errorf("runner: status --fleet: the topology has no cloud agent to issue the orchestrator's identity")
	}
	if !r.isLocal(orch.Host) {
		return nil, fmt.Errorf("runner: status --fleet runs on the cloud host %s (--host %s), whose agent issues the orchestrator's identity", orch.Host, orch.Host)
	}
	id, err := spiffeid.FromString(orch.ID)
	if err != nil {
		return nil, fmt.Errorf("runner: orchestrator ID: %w", err)
	}
	wait := max(timeout, 5*time.Second)
	src, err := svidsource.New(ctx, "unix://"+orch.Socket, id, wait)
	if err != nil {
		return nil, fmt.Errorf("runner: status --fleet: the orchestrator's SVID: %w", err)
	}
	defer src.Close()
	own := &agentSVID{want: id}
	own.src.Store(src)
	// The agent may push the orchestrator's SVID after another of this
	// process's (the cloud host's status identity).
	deadline := time.Now().Add(wait)
	_, err = own.GetX509SVID()
	for err != nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		_, err = own.GetX509SVID()
	}
	if err != nil {
		return nil, fmt.Errorf("runner: status --fleet: %w; it is issued to edgeid %s as %s (registered by `up` on %s)",
			err, orchestratorExe(r.env), r.env.OrchestratorAccount.Selector(), orch.Host)
	}
	var targets []FleetHost
	for _, h := range r.plan.Hosts {
		t := FleetHost{Host: h.Name}
		if h.Status == nil {
			t.Note = "no status endpoint: no Workload API agent on this host"
		} else {
			t.Addr, t.SPIFFEID = h.Status.Addr, h.Status.ID
		}
		targets = append(targets, t)
	}
	f := &Fleet{TrustDomain: r.top.TrustDomain, Orchestrator: orch.ID}
	f.Hosts = queryFleet(ctx, targets, func(ctx context.Context, t FleetHost) (*Status, error) {
		return fetchHostStatus(ctx, own, t, timeout)
	})
	f.Problems = fleetProblems(f.Hosts)
	return f, nil
}

func orchestratorExe(env render.Env) string {
	if env.OrchestratorExe != "" {
		return env.OrchestratorExe
	}
	return env.Bins.Edgeid
}

// queryFleet reads every target with an endpoint in parallel.
func queryFleet(ctx context.Context, targets []FleetHost, read func(context.Context, FleetHost) (*Status, error)) []FleetHost {
	out := append([]FleetHost{}, targets...)
	var wg sync.WaitGroup
	for i := range out {
		if out[i].Addr == "" {
			continue
		}
		wg.Go(func() {
			st, err := read(ctx, out[i])
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Status = st
		})
	}
	wg.Wait()
	return out
}

// fleetProblems are the hosts' problems, and each host not read.
func fleetProblems(hosts []FleetHost) []string {
	problems := []string{}
	for _, h := range hosts {
		switch {
		case h.Error != "":
			problems = append(problems, fmt.Sprintf("host %s: unreachable: %s", h.Host, h.Error))
		case h.Status != nil:
			for _, p := range h.Status.Problems {
				problems = append(problems, fmt.Sprintf("host %s: %s", h.Host, p))
			}
		}
	}
	return problems
}

// fetchHostStatus reads one host's status endpoint over mTLS with src's
// SVID, accepting only the server ID t.SPIFFEID, within timeout.
func fetchHostStatus(ctx context.Context, src svidSource, t FleetHost, timeout time.Duration) (*Status, error) {
	server, err := spiffeid.FromString(t.SPIFFEID)
	if err != nil {
		return nil, fmt.Errorf("status ID: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		TLSClientConfig:   statusClientTLS(src, server),
		DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+t.Addr+StatusPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", t.Addr, resp.StatusCode)
	}
	if len(body) > maxStatusBytes {
		return nil, fmt.Errorf("%s: status over %d bytes", t.Addr, maxStatusBytes)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", t.Addr, err)
	}
	return &st, nil
}

// WriteTree prints the fleet: one line per host, then its own tree.
func (f *Fleet) WriteTree(w io.Writer) {
	read := 0
	for _, h := range f.Hosts {
		if h.Status != nil {
			read++
		}
	}
	fmt.Fprintf(w, "fleet of trust domain %s: %d host(s), %d read as %s\n", f.TrustDomain, len(f.Hosts), read, f.Orchestrator)
	for _, h := range f.Hosts {
		switch {
		case h.Note != "":
			fmt.Fprintf(w, "host %s: %s\n", h.Host, h.Note)
		case h.Error != "":
			fmt.Fprintf(w, "host %s %s: UNREACHABLE: %s\n", h.Host, h.Addr, h.Error)
		default:
			fmt.Fprintf(w, "host %s %s (%s)\n", h.Host, h.Addr, h.SPIFFEID)
			var b bytes.Buffer
			h.Status.WriteTree(&b)
			for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
				fmt.Fprintf(w, "   %s\n", line)
			}
		}
	}
}
