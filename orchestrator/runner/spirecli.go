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
	X509SVIDTTL int64    `json:"x509_svid_ttl"`
	DNSNames    []string `json:"dns_names"`
	Downstream  bool     `json:"downstream"`
}

func (e entryJSON) spiffeID() string {
	return "spiffe://" + e.SPIFFEID.TrustDomain + e.SPIFFEID.Path
}

func (e entryJSON) selectors() string {
	sels := make([]string, len(e.Selectors))
	for i, sel := range e.Selectors {
		sels[i] = sel.Type + ":" + sel.Value
	}
	return strings.Join(slices.Sorted(slices.Values(sels)), ",")
}

// matches reports whether an entry the server holds has e's TTL, DNS names
// and downstream flag (a TTL of 0 in e is the server's default: any).
func (have entryJSON) matches(e render.Entry) bool {
	if e.X509TTL > 0 && have.X509SVIDTTL != int64(e.X509TTL.Seconds()) {
		return false
	}
	return have.Downstream == e.Downstream &&
		slices.Equal(slices.Sorted(slices.Values(have.DNSNames)), slices.Sorted(slices.Values(e.DNSNames)))
}

// EntryCounts says what a registration did.
type EntryCounts struct {
	Created, Updated, Present int
}

func (c EntryCounts) String() string {
	return fmt.Sprintf("%d created, %d updated, %d already present", c.Created, c.Updated, c.Present)
}

// ensureEntry makes the server hold e. An entry with the same SPIFFE ID,
// parent and selectors is kept, or updated when its TTL, DNS names or
// downstream flag differ; one whose selectors differ (a changed pipeline
// config, say) is replaced. A re-run thus converges on the plan.
func (s serverCLI) ensureEntry(ctx context.Context, e render.Entry, counts *EntryCounts) error {
	out, err := s.run(ctx, "entry", "show", "-output", "json", "-spiffeID", e.SPIFFEID, "-parentID", e.ParentID)
	if err != nil {
		return err
	}
	var resp struct {
		Entries []entryJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return fmt.Errorf("spire-server entry show: unexpected output: %w", err)
	}
	want := strings.Join(slices.Sorted(slices.Values(e.Selectors)), ",")
	for _, have := range resp.Entries {
		if have.selectors() != want {
			if _, err := s.run(ctx, "entry", "delete", "-entryID", have.ID); err != nil {
				return err
			}
			continue
		}
		if have.matches(e) {
			counts.Present++
			return nil
		}
		if _, err := s.run(ctx, append([]string{"entry", "update", "-output", "json", "-entryID", have.ID}, entryFlags(e)...)...); err != nil {
			return err
		}
		counts.Updated++
		return nil
	}
	if _, err := s.run(ctx, append([]string{"entry", "create", "-output", "json"}, entryFlags(e)...)...); err != nil {
		return err
	}
	counts.Created++
	return nil
}

// entryFlags are the spire-server entry create/update flags for e.
func entryFlags(e render.Entry) []string {
	args := []string{"-parentID", e.ParentID, "-spiffeID", e.SPIFFEID}
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
	return args
}

// RegisterEntries makes a SPIRE server (its spire-server program and admin
// socket) hold entries, as `up` does for the plan's (see ensureEntry).
func RegisterEntries(ctx context.Context, spireServer, socket string, entries []render.Entry) (EntryCounts, error) {
	return serverCLI{bin: spireServer, socket: socket}.ensureEntries(ctx, entries)
}

func (s serverCLI) ensureEntries(ctx context.Context, entries []render.Entry) (EntryCounts, error) {
	var counts EntryCounts
	for _, e := range entries {
		if err := s.ensureEntry(ctx, e, &counts); err != nil {
			return counts, fmt.Errorf("entry %s: %w", e.SPIFFEID, err)
		}
	}
	return counts, nil
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
