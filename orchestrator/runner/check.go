package runner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edgeid/edgeid/orchestrator/render"
)

// rotationOverdue is the share of a certificate's life left below which
// its rotation is overdue: SPIRE and edgeid-helper renew at half-life, and
// a SPIRE server prepares its next CA at half-life and switches to it
// well before the end.
const rotationOverdue = 1.0 / 6

// Check returns one line per problem in st (empty when all is well):
// a service of this machine not running, or under another uid than its
// plan's, or not ready on its health endpoint; an unhealthy SPIRE server;
// a server CA, agent or workload SVID within its last sixth of life (its
// rotation is overdue) or expired.
func (r *Runner) Check(st *Status, now time.Time) []string {
	var out []string
	for _, p := range st.Processes {
		switch {
		case !p.Running:
			out = append(out, fmt.Sprintf("%s: not running", p.Name))
		case p.UID != nil && *p.UID != p.WantUID:
			out = append(out, fmt.Sprintf("%s: runs as uid %d, want %d", p.Name, *p.UID, p.WantUID))
		case p.Health != "" && p.Health != "ready":
			out = append(out, fmt.Sprintf("%s: %s", p.Name, p.Health))
		}
	}
	servers := append([]ServerStatus{}, st.Cloud...)
	for _, s := range st.Sites {
		if s.Server.Host != "" {
			servers = append(servers, s.Server)
		}
	}
	for _, s := range servers {
		if s.Running && !s.Healthy {
			out = append(out, fmt.Sprintf("server %s: unhealthy: %s", s.Host, s.Error))
		}
		if msg := lifeLeft(s.CAIssued, s.CAExpires, now); msg != "" {
			out = append(out, fmt.Sprintf("server %s: CA %s", s.Host, msg))
		}
	}
	for _, s := range st.Sites {
		for _, w := range s.Workloads {
			if msg := lifeLeft(w.SVIDIssued, w.SVIDExpires, now); msg != "" {
				out = append(out, fmt.Sprintf("workload %s: SVID %s", w.SPIFFEID, msg))
			}
		}
	}
	return out
}

// lifeLeft says what is wrong with a certificate valid from issued to
// expires at now: expired, or within its last sixth of life; "" when
// neither, or when the dates are unknown.
func lifeLeft(issued, expires *time.Time, now time.Time) string {
	if issued == nil || expires == nil {
		return ""
	}
	left := expires.Sub(now)
	switch life := expires.Sub(*issued); {
	case left <= 0:
		return fmt.Sprintf("expired at %s", expires.Format(time.RFC3339))
	case life > 0 && float64(left) < rotationOverdue*float64(life):
		return fmt.Sprintf("expires in %s of its %s and was not rotated", left.Round(time.Second), life.Round(time.Second))
	}
	return ""
}

// health asks a service's health endpoints whether it is ready: "ready",
// "" when the service has none, or what is wrong. A helper is asked twice:
// /readyz (an SVID on disk, every tunnel listening) and /healthz (the last
// rotation's writes succeeded).
func (r *Runner) health(ctx context.Context, h *render.Host, s *render.Service) string {
	if s.HealthURL == "" {
		return ""
	}
	urls := []string{s.HealthURL}
	if s.Kind == render.KindHelper {
		urls = append(urls, strings.TrimSuffix(s.HealthURL, "/readyz")+"/healthz")
	}
	caFile, _ := render.VaultTLSFiles(h)
	for _, u := range urls {
		if msg := probe(ctx, u, caFile); msg != "" {
			return msg
		}
	}
	return "ready"
}

// probe GETs url and returns what is wrong, or "" for HTTP 200.
func probe(ctx context.Context, url, caFile string) string {
	client, err := httpClient(url, caFile, 3*time.Second)
	if err != nil {
		return "health check: " + err.Error()
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "health check: " + err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return "not ready: " + err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("not ready: %s answers HTTP %d", url, resp.StatusCode)
	}
	return ""
}
