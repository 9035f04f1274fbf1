package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeid/edgeid/orchestrator/render"
)

// serverCLI drives one SPIRE server through its admin socket with the
// spire-server command, which is stable across SPIRE versions.
type serverCLI struct {
	bin    string
	socket string
}

func (s serverCLI) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	full := append(append([]string{}, args...), "-socketPath", s.socket)
	cmd := exec.CommandContext(ctx, s.bin, full...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("spire-server %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	return stdout.String(), nil
}

func (s serverCLI) healthy(ctx context.Context) error {
	_, err := s.run(ctx, "healthcheck")
	return err
}

func (s serverCLI) bundlePEM(ctx context.Context) ([]byte, error) {
	out, err := s.run(ctx, "bundle", "show", "-format", "pem")
	return []byte(out), err
}

// joinToken makes a join token whose agent gets the alias spiffeID.
func (s serverCLI) joinToken(ctx context.Context, spiffeID string) (string, error) {
	out, err := s.run(ctx, "token", "generate", "-output", "json", "-ttl", "600", "-spiffeID", spiffeID)
	if err != nil {
		return "", err
	}
	var resp struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Value == "" {
		return "", fmt.Errorf("spire-server token generate: unexpected output")
	}
	return resp.Value, nil
}

type entryJSON struct {
	ID       string `json:"id"`
	SPIFFEID struct {
		TrustDomain string `json:"trust_domain"`
		Path        string `json:"path"`
	} `json:"spiffe_id"`
	ParentID struct {
		TrustDomain string `json:"trust_domain"`
		Path        string `json:"path"`
	} `json:"parent_id"`
	Selectors []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"selectors"`
}

func (e entryJSON) spiffeID() string {
	return "spiffe://" + e.SPIFFEID.TrustDomain + e.SPIFFEID.Path
}

// ensureEntry creates the entry unless one with the same SPIFFE ID and
// parent exists. An existing entry whose selectors differ (a changed
// pipeline config, say) is replaced, so a re-run converges on the plan.
func (s serverCLI) ensureEntry(ctx context.Context, e render.Entry) (created bool, err error) {
	out, err := s.run(ctx, "entry", "show", "-output", "json", "-spiffeID", e.SPIFFEID, "-parentID", e.ParentID)
	if err != nil {
		return false, err
	}
	var resp struct {
		Entries []entryJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return false, fmt.Errorf("spire-server entry show: unexpected output: %w", err)
	}
	want := strings.Join(slices.Sorted(slices.Values(e.Selectors)), ",")
	for _, have := range resp.Entries {
		sels := make([]string, len(have.Selectors))
		for i, sel := range have.Selectors {
			sels[i] = sel.Type + ":" + sel.Value
		}
		if strings.Join(slices.Sorted(slices.Values(sels)), ",") == want {
			return false, nil
		}
		if _, err := s.run(ctx, "entry", "delete", "-entryID", have.ID); err != nil {
			return false, err
		}
	}
	args := []string{"entry", "create", "-output", "json", "-parentID", e.ParentID, "-spiffeID", e.SPIFFEID}
	for _, sel := range e.Selectors {
		args = append(args, "-selector", sel)
	}
	if e.X509TTL > 0 {
		args = append(args, "-x509SVIDTTL", strconv.Itoa(int(e.X509TTL.Seconds())))
	}
	if e.Downstream {
		args = append(args, "-downstream")
	}
	for _, d := range e.DNSNames {
		args = append(args, "-dns", d)
	}
	if _, err := s.run(ctx, args...); err != nil {
		return false, err
	}
	return true, nil
}

// RegisterEntries makes a SPIRE server (its spire-server program and admin
// socket) hold entries, as `up` does for the plan's: an entry with the same
// SPIFFE ID, parent and selectors is kept, one whose selectors differ is
// replaced. It returns how many it created and how many were there.
func RegisterEntries(ctx context.Context, spireServer, socket string, entries []render.Entry) (created, present int, err error) {
	return serverCLI{bin: spireServer, socket: socket}.ensureEntries(ctx, entries)
}

func (s serverCLI) ensureEntries(ctx context.Context, entries []render.Entry) (created, present int, err error) {
	for _, e := range entries {
		ok, err := s.ensureEntry(ctx, e)
		if err != nil {
			return created, present, fmt.Errorf("entry %s: %w", e.SPIFFEID, err)
		}
		if ok {
			created++
		} else {
			present++
		}
	}
	return created, present, nil
}

// agentCLI drives a SPIRE agent's healthcheck.
type agentCLI struct {
	bin    string
	socket string
}

func (a agentCLI) healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, "healthcheck", "-socketPath", a.socket)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("spire-agent healthcheck: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
