package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgeid/edgeid/orchestrator/render"
)

// Status is the state of a run: the tree Vault → cloud servers → edge
// sites → agents → workloads.
type Status struct {
	TrustDomain string         `json:"trust_domain"`
	Vault       *VaultStatus   `json:"vault,omitempty"`
	Cloud       []ServerStatus `json:"cloud"`
	Sites       []SiteStatus   `json:"sites"`
	Kafka       *KafkaStatus   `json:"kafka,omitempty"`
}

// VaultStatus is a managed Vault's state.
type VaultStatus struct {
	Addr    string `json:"addr"`
	Running bool   `json:"running"`
}

// ServerStatus is one SPIRE server.
type ServerStatus struct {
	Host      string        `json:"host"`
	Addr      string        `json:"addr"`
	Running   bool          `json:"running"`
	Healthy   bool          `json:"healthy"`
	CAExpires *time.Time    `json:"ca_expires,omitempty"`
	Agents    []AgentStatus `json:"agents"`
	Error     string        `json:"error,omitempty"`
}

// AgentStatus is one agent known to a server.
type AgentStatus struct {
	ID          string     `json:"spiffe_id"`
	SVIDExpires *time.Time `json:"svid_expires,omitempty"`
	Banned      bool       `json:"banned,omitempty"`
}

// SiteStatus is one edge site.
type SiteStatus struct {
	Name      string           `json:"name"`
	Server    ServerStatus     `json:"server"`
	Workloads []WorkloadStatus `json:"workloads"`
}

// WorkloadStatus is one workload's helper and SVID.
type WorkloadStatus struct {
	Name        string     `json:"name"`
	SPIFFEID    string     `json:"spiffe_id"`
	Running     bool       `json:"running"`
	SVIDExpires *time.Time `json:"svid_expires,omitempty"`
}

// KafkaStatus is the demo broker's state.
type KafkaStatus struct {
	Addr     string         `json:"addr"`
	Running  bool           `json:"running"`
	Messages map[string]int `json:"messages_by_producer"`
}

// Status reads the state of every process of the run.
func (r *Runner) Status(ctx context.Context) *Status {
	st := &Status{TrustDomain: r.top.TrustDomain}
	for _, ref := range r.services("vault", "") {
		scheme := "https://"
		if r.env.Embedded {
			scheme = "http://"
		}
		st.Vault = &VaultStatus{Addr: scheme + ref.s.Addr, Running: r.proc(ref.h, ref.s).pid() != 0}
	}
	for _, ref := range r.services("spire-server", "") {
		s := r.serverStatus(ctx, ref)
		if ref.s.Site == "" {
			st.Cloud = append(st.Cloud, s)
			continue
		}
		site := SiteStatus{Name: ref.s.Site, Server: s}
		for _, w := range r.services("helper", "") {
			if w.s.Site != ref.s.Site {
				continue
			}
			ws := WorkloadStatus{
				Name:     w.s.Workload,
				SPIFFEID: render.WorkloadID(r.top.TrustDomain, w.s.Site, w.s.Workload),
				Running:  r.proc(w.h, w.s).pid() != 0,
			}
			if data, err := os.ReadFile(w.s.ReadyFile); err == nil {
				if certs, err := parseCerts(data); err == nil {
					t := certs[0].NotAfter
					ws.SVIDExpires = &t
				}
			}
			site.Workloads = append(site.Workloads, ws)
		}
		st.Sites = append(st.Sites, site)
	}
	for _, ref := range r.services("kafka", "") {
		msgs, _ := ConsumedFrom(ref.s.DataDir + "/messages.log")
		st.Kafka = &KafkaStatus{Addr: ref.s.Addr, Running: r.proc(ref.h, ref.s).pid() != 0, Messages: msgs}
	}
	return st
}

func (r *Runner) serverStatus(ctx context.Context, ref svcRef) ServerStatus {
	s := ServerStatus{Host: ref.h.Name, Addr: ref.s.Addr, Running: r.proc(ref.h, ref.s).pid() != 0}
	if !s.Running {
		return s
	}
	cli := r.server(ref)
	if err := cli.healthy(ctx); err != nil {
		s.Error = err.Error()
		return s
	}
	s.Healthy = true
	if out, err := cli.run(ctx, "localauthority", "x509", "show", "-output", "json"); err == nil {
		var resp struct {
			Active struct {
				ExpiresAt json.RawMessage `json:"expires_at"`
			} `json:"active"`
		}
		if json.Unmarshal([]byte(out), &resp) == nil {
			if t, ok := unixTime(resp.Active.ExpiresAt); ok {
				s.CAExpires = &t
			}
		}
	}
	if out, err := cli.run(ctx, "agent", "list", "-output", "json"); err == nil {
		var resp struct {
			Agents []struct {
				ID struct {
					TrustDomain string `json:"trust_domain"`
					Path        string `json:"path"`
				} `json:"id"`
				ExpiresAt json.RawMessage `json:"x509svid_expires_at"`
				Banned    bool            `json:"banned"`
			} `json:"agents"`
		}
		if json.Unmarshal([]byte(out), &resp) == nil {
			for _, a := range resp.Agents {
				as := AgentStatus{ID: "spiffe://" + a.ID.TrustDomain + a.ID.Path, Banned: a.Banned}
				if t, ok := unixTime(a.ExpiresAt); ok {
					as.SVIDExpires = &t
				}
				s.Agents = append(s.Agents, as)
			}
		}
	}
	return s
}

// unixTime reads a protojson int64 (a number or a quoted number).
func unixTime(raw json.RawMessage) (time.Time, bool) {
	sv := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(sv, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// WriteTree prints st as a tree a person can read.
func (st *Status) WriteTree(w io.Writer) {
	exp := func(t *time.Time) string {
		if t == nil {
			return "unknown"
		}
		return fmt.Sprintf("%s (in %s)", t.Format(time.RFC3339), time.Until(*t).Round(time.Second))
	}
	health := func(s ServerStatus) string {
		switch {
		case s.Healthy:
			return "healthy"
		case s.Running:
			return "running, unhealthy: " + s.Error
		default:
			return "stopped"
		}
	}
	fmt.Fprintf(w, "trust domain %s\n", st.TrustDomain)
	if st.Vault != nil {
		state := "stopped"
		if st.Vault.Running {
			state = "running"
		}
		fmt.Fprintf(w, "Vault %s (%s)\n", st.Vault.Addr, state)
	}
	for _, c := range st.Cloud {
		fmt.Fprintf(w, "└─ cloud server %s %s — %s, CA expires %s\n", c.Host, c.Addr, health(c), exp(c.CAExpires))
		for _, a := range c.Agents {
			fmt.Fprintf(w, "   ├─ agent %s, SVID expires %s\n", a.ID, exp(a.SVIDExpires))
		}
		for _, s := range st.Sites {
			fmt.Fprintf(w, "   └─ site %s: edge server %s %s — %s, CA expires %s\n", s.Name, s.Server.Host, s.Server.Addr, health(s.Server), exp(s.Server.CAExpires))
			for _, a := range s.Server.Agents {
				fmt.Fprintf(w, "      ├─ agent %s, SVID expires %s\n", a.ID, exp(a.SVIDExpires))
			}
			for _, wl := range s.Workloads {
				state := "stopped"
				if wl.Running {
					state = "running"
				}
				fmt.Fprintf(w, "      └─ workload %s (%s), helper %s, SVID expires %s\n", wl.Name, wl.SPIFFEID, state, exp(wl.SVIDExpires))
			}
		}
	}
	if st.Kafka != nil {
		fmt.Fprintf(w, "Kafka demo broker %s: %d producer(s)\n", st.Kafka.Addr, len(st.Kafka.Messages))
		for id, n := range st.Kafka.Messages {
			fmt.Fprintf(w, "   %d message(s) from %s\n", n, id)
		}
	}
}
