package fleet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
	"github.com/edgeid/edgeid/test/harness"
)

// world is what every case of one run shares: the node CAs, the plugin
// binary, one PostgreSQL server, and the nodes already issued.
type world struct {
	cfg      config
	dir      string
	cas      map[string]*kubeedgeca.CA // by attestor type
	caPaths  map[string]string
	plugin   harness.Plugin
	pgOnce   sync.Once
	pg       *harness.Postgres
	pgDBs    int
	nodes    map[string][]*Node // by attestor type and size
	profiles string
}

func newWorld(b *testing.B, cfg config) *world {
	w := &world{
		cfg:     cfg,
		dir:     b.TempDir(),
		cas:     map[string]*kubeedgeca.CA{},
		caPaths: map[string]string{},
		nodes:   map[string][]*Node{},
		plugin:  harness.BuildPlugin(b, "./plugins/cmd/edgeid-nodeattestor-kubeedge-server"),
	}
	for _, a := range []Attestor{KubeEdge{}, X509PoP{}} {
		ca, err := kubeedgeca.New(kubeedgeca.Options{CommonName: "fleet-" + a.Type()})
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(w.dir, a.Type()+"-ca.crt")
		if err := ca.WriteCertificate(path); err != nil {
			b.Fatal(err)
		}
		w.cas[a.Type()], w.caPaths[a.Type()] = ca, path
	}
	w.profiles = filepath.Join(os.TempDir(), "edgeid-fleet-profiles")
	if err := os.MkdirAll(w.profiles, 0o755); err != nil {
		b.Fatal(err)
	}
	return w
}

// nodesFor returns the first n nodes for attestor a, issuing more as
// needed; every case with this attestor reuses them (each case has a
// fresh datastore, so a reused node still attests for the first time).
func (w *world) nodesFor(b *testing.B, a Attestor, n int) []*Node {
	have := w.nodes[a.Type()]
	if len(have) < n {
		more, err := NewNodes(w.cas[a.Type()], a, max(n, slices.Max(w.cfg.sizes)))
		if err != nil {
			b.Fatal(err)
		}
		have = more
		w.nodes[a.Type()] = have
	}
	return have[:n]
}

// datastoreHCL returns a DataStore block for a fresh database: empty for
// SQLite (the harness's default file in the server's own directory), or
// a new database on the shared PostgreSQL server.
func (w *world) datastoreHCL(b *testing.B, ds string) string {
	if ds == "sqlite" {
		return ""
	}
	w.pgOnce.Do(func() { w.pg = harness.StartPostgres(b) })
	w.pgDBs++
	db := fmt.Sprintf("fleet%d", w.pgDBs)
	psql := harness.RequireCommand(b, "psql")
	cmd := exec.Command(psql, "-h", w.pg.Host, "-p", fmt.Sprint(w.pg.Port), "-U", "postgres", "-d", "postgres", "-c", "create database "+db)
	cmd.Env = append(harness.CleanEnv(w.dir), "PGCONNECT_TIMEOUT=5")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("create database %s: %v\n%s", db, err, out)
	}
	dsn := strings.Replace(w.pg.DSN, "dbname=spire", "dbname="+db, 1)
	return fmt.Sprintf(`    DataStore "sql" {
        plugin_data {
            database_type = "postgres"
            connection_string = %q
        }
    }`, dsn)
}

// attestorHCL is the server's NodeAttestor block for a.
func (w *world) attestorHCL(a Attestor) string {
	if a.Type() == (X509PoP{}).Type() {
		return fmt.Sprintf(`    NodeAttestor "x509pop" {
        plugin_data {
            ca_bundle_path = %q
        }
    }
`, w.caPaths[a.Type()])
	}
	// The Kubernetes Node check is off: it is a round trip to
	// kube-apiserver that x509pop has no counterpart of.
	return fmt.Sprintf(`    NodeAttestor "kubeedge" {
        plugin_cmd = %q
        plugin_checksum = %q
        plugin_data {
            cluster = %q
            ca_bundle_path = %q
            kubernetes_check = "disabled"
        }
    }
`, w.plugin.Path, w.plugin.Checksum, Cluster, w.caPaths[a.Type()])
}

// startServer starts a SPIRE server with attestor a on datastore ds, with
// the profiling endpoint on profPort. The harness's test settings that
// would distort a load test are put back to SPIRE's defaults: INFO logs
// (not DEBUG) and a 5 s entry cache reload (not 1 s). Attestation rate
// limiting stays off, as for any test whose agents share 127.0.0.1; a real
// fleet comes from many addresses.
func (w *world) startServer(b *testing.B, a Attestor, ds string, profPort int) *harness.SpireServer {
	s := harness.NewSpireServer(b, harness.ServerConfig{
		Name:        "spire-server-" + a.Type() + "-" + ds,
		CATTL:       24 * time.Hour,
		NoJoinToken: true,
		DataStore:   w.datastoreHCL(b, ds),
		Plugins:     w.attestorHCL(a),
		ServerExtra: fmt.Sprintf("    agent_ttl = %q\n    profiling_enabled = true\n    profiling_port = %d\n", w.cfg.agentTTL, profPort),
	})
	conf, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		b.Fatal(err)
	}
	text := string(conf)
	for old, repl := range map[string]string{
		`log_level = "DEBUG"`:          `log_level = "INFO"`,
		`cache_reload_interval = "1s"`: `cache_reload_interval = "5s"`,
	} {
		if !strings.Contains(text, old) {
			b.Fatalf("server.conf no longer has %s; update the fleet benchmark", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	if err := os.WriteFile(s.ConfigPath, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	s.Start(b)
	return s
}
