package runner

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeid/edgeid/orchestrator/render"
)

// GatewayStatus is the cloud Kafka gateway's state: its policy's decision
// counts, read from its metrics endpoint.
type GatewayStatus struct {
	Addr    string `json:"addr"`
	Running bool   `json:"running"`
	// Decisions counts authorization decisions by result ("allow",
	// "deny"); DenialsByActor the denials by client SPIFFE ID (bounded by
	// the gateway; the overflow is "other").
	Decisions      map[string]float64 `json:"decisions"`
	DenialsByActor map[string]float64 `json:"denials_by_actor"`
	Error          string             `json:"error,omitempty"`
}

// gatewayStatus reads one gateway's decision counts.
func (r *Runner) gatewayStatus(ctx context.Context, ref svcRef) *GatewayStatus {
	st := &GatewayStatus{Addr: ref.s.Addr, Running: r.proc(ref.h, ref.s).pid() != 0}
	if ref.s.MetricsURL == "" || !st.Running {
		return st
	}
	text, err := scrape(ctx, ref.s.MetricsURL)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Decisions, st.DenialsByActor = ParseGatewayMetrics(text)
	return st
}

func scrape(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metrics: %s answers HTTP %d", url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return string(b), err
}

// ParseGatewayMetrics sums edgeid_kafkagw_decisions_total by result and
// reads edgeid_kafkagw_denials_total by actor from Prometheus text.
func ParseGatewayMetrics(text string) (decisions, denials map[string]float64) {
	decisions, denials = map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "edgeid_kafkagw_decisions_total":
			decisions[label(labels, "result")] += v
		case "edgeid_kafkagw_denials_total":
			denials[label(labels, "actor")] += v
		}
	}
	return decisions, denials
}

// label finds key="value" in a label list; values here hold no quotes.
func label(labels, key string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// gatewayNode is the gateway's line in the status tree.
func (g *GatewayStatus) treeNode() *treeNode {
	n := &treeNode{label: fmt.Sprintf("Kafka gateway %s (%s): policy decisions %.0f allowed, %.0f denied",
		g.Addr, running(g.Running), g.Decisions["allow"], g.Decisions["deny"])}
	if g.Error != "" {
		n.label += " — " + g.Error
	}
	for _, id := range slices.Sorted(maps.Keys(g.DenialsByActor)) {
		n.children = append(n.children, &treeNode{label: fmt.Sprintf("%.0f denial(s) for %s", g.DenialsByActor[id], id)})
	}
	return n
}

// gatewayStatuses are the gateways of the run on this machine.
func (r *Runner) gatewayStatuses(ctx context.Context) []*GatewayStatus {
	var out []*GatewayStatus
	for _, ref := range r.services(render.KindKafkaGateway, "") {
		out = append(out, r.gatewayStatus(ctx, ref))
	}
	return out
}
