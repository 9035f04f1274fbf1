package conf

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The metrics edgeid's dashboard and rules may name: what the helper, the
// Kafka gateway and SPIRE 1.13.3 export (SPIRE's names read from a real
// server's /metrics), and Prometheus's own.
var knownMetrics = []string{
	"up",
	"edgeid_helper_svid_expiry_seconds", "edgeid_helper_svid_lifetime_seconds",
	"edgeid_helper_rotation_duration_seconds_bucket", "edgeid_helper_rotations_total", "edgeid_helper_write_errors_total",
	"edgeid_kafkagw_decisions_total", "edgeid_kafkagw_denials_total", "edgeid_kafkagw_request_duration_seconds_bucket",
	"spire_server_manager_x509_ca_rotate_expiration", "spire_server_manager_x509_ca_rotate_ttl",
	"spire_server_ca_manager_x509_ca_prepare", "spire_server_rpc_agent_v1_agent_attest_agent",
}

var metricName = regexp.MustCompile(`\b(up|edgeid_[a-z_]+|spire_[a-z0-9_]+)\b`)

// TestGrafanaDashboardStructure checks what can be checked here without
// Grafana: the JSON parses, has a uid, a Prometheus datasource variable,
// panels that do not overlap, and every query names only known metrics.
func TestGrafanaDashboardStructure(t *testing.T) {
	var d struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string                   `json:"title"`
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(GrafanaDashboard, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) < 8 {
		t.Fatalf("dashboard uid %q title %q with %d panels", d.UID, d.Title, len(d.Panels))
	}
	if len(d.Templating.List) != 1 || d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Query != "prometheus" {
		t.Errorf("want one Prometheus datasource variable: %+v", d.Templating.List)
	}
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if prev, ok := cells[[2]int{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap", prev, p.Title)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		for _, q := range p.Targets {
			for _, m := range metricName.FindAllString(q.Expr, -1) {
				if !slices.Contains(knownMetrics, m) {
					t.Errorf("panel %q queries %s, which nothing exports", p.Title, m)
				}
			}
		}
	}
}

// The alert rules name only known metrics too.
func TestAlertRulesNameKnownMetrics(t *testing.T) {
	for _, line := range strings.Split(string(AlertRules), "\n") {
		expr, ok := strings.CutPrefix(strings.TrimSpace(line), "expr: ")
		if !ok {
			continue
		}
		for _, m := range metricName.FindAllString(expr, -1) {
			if !slices.Contains(knownMetrics, m) {
				t.Errorf("rule %q names %s, which nothing exports", expr, m)
			}
		}
	}
}
