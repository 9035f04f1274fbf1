package render

import (
	"net"

	"net/url"
	"strconv"
	"text/template"

	"github.com/edgeid/edgeid/conf"
)

// AlertRulesFile is where the cloud host keeps edgeid's alert rules
// (conf/prometheus/alerts.yml, copied by the runner).
const AlertRulesFile = "alerts.yml"

// scrapeJob is one Prometheus job: every service of a kind.
type scrapeJob struct {
	Name    string
	Scheme  string
	Path    string
	Params  url.Values
	CAFile  string
	Targets []scrapeTarget
}

// scrapeTarget is one service to scrape, named host/service.
type scrapeTarget struct {
	Addr     string
	Instance string
	Site     string
}

// prometheusTmpl is the Prometheus configuration: one job per kind of
// service, each target labelled with its host/service and site.
var prometheusTmpl = template.Must(template.New("prometheus").Funcs(funcs).Parse(`# Rendered by edgeid: Prometheus scrapes every metrics endpoint of the
# plan, and evaluates edgeid's alert rules.
global:
  scrape_interval: {{.Interval}}
  evaluation_interval: {{.Interval}}
rule_files:
  - {{q .Rules}}
scrape_configs:
{{- range .Jobs}}
  - job_name: {{q .Name}}
    scheme: {{.Scheme}}
    metrics_path: {{q .Path}}
{{- if .Params}}
    params:
{{- range $k, $v := .Params}}
      {{$k}}: [{{range $i, $x := $v}}{{if $i}}, {{end}}{{q $x}}{{end}}]
{{- end}}
{{- end}}
{{- if .CAFile}}
    tls_config:
      ca_file: {{q .CAFile}}
{{- end}}
    static_configs:
{{- range .Targets}}
      - targets: [{{q .Addr}}]
        labels:
          instance: {{q .Instance}}
{{- if .Site}}
          site: {{q .Site}}
{{- end}}
{{- end}}
{{- end}}
`))

// scrapeJobs groups the plan's metrics endpoints into jobs by kind: every
// host's in an embedded run or when the listeners bind beyond loopback,
// else only the cloud host's own (another host's loopback is out of reach;
// set observability.bind_address to scrape it).
func (b *builder) scrapeJobs() []scrapeJob {
	ip := net.ParseIP(b.bindAddress())
	onlyHost := ""
	if !b.env.Embedded && ip != nil && ip.IsLoopback() {
		onlyHost = b.top.Cloud.Hosts[0]
	}
	names := map[ServiceKind]string{
		KindVault: "vault", KindSpireServer: "spire-server", KindSpireAgent: "spire-agent", KindHelper: "edgeid-helper",
	}
	var jobs []scrapeJob
	index := map[ServiceKind]int{}
	for _, h := range b.plan.Hosts {
		if onlyHost != "" && h.Name != onlyHost {
			continue
		}
		for _, s := range h.Services {
			u, err := url.Parse(s.MetricsURL)
			if s.MetricsURL == "" || err != nil {
				continue
			}
			i, ok := index[s.Kind]
			if !ok {
				i = len(jobs)
				index[s.Kind] = i
				job := scrapeJob{Name: names[s.Kind], Scheme: u.Scheme, Path: u.Path, Params: u.Query()}
				if job.Name == "" {
					job.Name = string(s.Kind)
				}
				if s.Kind == KindVault && u.Scheme == "https" {
					job.CAFile, _ = VaultTLSFiles(h)
				}
				jobs = append(jobs, job)
			}
			jobs[i].Targets = append(jobs[i].Targets, scrapeTarget{Addr: u.Host, Instance: h.Name + "/" + s.Name, Site: s.Site})
		}
	}
	if sup := b.supervisorJob(onlyHost); len(sup.Targets) > 0 {
		jobs = append(jobs, sup)
	}
	return jobs
}

// supervisorJob scrapes `edgeid supervise` on every host (on onlyHost's
// when set): the orchestrator's view of what runs.
func (b *builder) supervisorJob(onlyHost string) scrapeJob {
	job := scrapeJob{Name: "edgeid-orchestrator", Scheme: "http", Path: "/metrics"}
	for _, h := range b.plan.Hosts {
		if h.SupervisorMetricsURL == "" || (onlyHost != "" && h.Name != onlyHost) {
			continue
		}
		u, err := url.Parse(h.SupervisorMetricsURL)
		if err != nil {
			continue
		}
		job.Targets = append(job.Targets, scrapeTarget{Addr: u.Host, Instance: h.Name + "/supervisor"})
	}
	return job
}

// buildPrometheus adds, in an embedded run with metrics on and the
// Prometheus binary given, a Prometheus on the cloud host that scrapes
// every service and evaluates the alert rules; on real hosts the cloud
// host's bundle gets the same configuration for the operator's own.
func (b *builder) buildPrometheus() {
	if !b.top.Observability.Metrics {
		return
	}
	h := b.host(b.top.Cloud.Hosts[0])
	cfgPath := h.path("prometheus", "prometheus.yml")
	rules := h.path("prometheus", AlertRulesFile)
	if b.env.Embedded && b.env.Bins.Prometheus != "" {
		// Added first, so that it scrapes itself too.
		port := strconv.Itoa(b.env.Port(h.Name, "prometheus", 9090))
		addr := net.JoinHostPort("127.0.0.1", port)
		h.addService(Service{
			Name: "prometheus", Kind: KindPrometheus, Addr: addr, URL: "http://" + addr, Account: b.control,
			Argv: []string{b.env.Bins.Prometheus, "--config.file=" + cfgPath, "--web.listen-address=" + addr,
				"--storage.tsdb.path=" + h.path("prometheus", "data"), "--storage.tsdb.retention.time=1d"},
			DataDir:    h.path("prometheus", "data"),
			MetricsURL: "http://" + addr + "/metrics",
			HealthURL:  "http://" + addr + "/-/ready",
		})
	}
	cfg := execute(prometheusTmpl, struct {
		Interval string
		Rules    string
		Jobs     []scrapeJob
	}{"5s", rules, b.scrapeJobs()})
	h.addOwnedFile(cfgPath, cfg, 0o644, b.control)
	h.addOwnedFile(rules, conf.AlertRules, 0o644, b.control)
}
