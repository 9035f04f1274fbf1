package compose

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/hashicorp/hcl/v2"

	helperconfig "github.com/edgeid/edgeid/helper/config"
	"github.com/edgeid/edgeid/orchestrator/cli"
	orender "github.com/edgeid/edgeid/orchestrator/render"
	"github.com/edgeid/edgeid/orchestrator/topology"
	"github.com/edgeid/edgeid/test/harness"
)

const (
	composeFile  = "docker-compose.yml"
	composeTopo  = "conf/compose/topology.hcl"
	sampleTopo   = "conf/topology.hcl"
	binDir       = "/opt/edgeid/bin"
	vaultImage   = "hashicorp/vault:1.21.0"
	renderMount  = "/render"
	hostsMount   = "/hosts"
	kubeEdgeCA   = "/etc/kubeedge/ca/rootCA.crt"
	renderedCA   = "/render/kubeedge/ca/rootCA.crt"
	kafkaService = "cloud-kafka"
	kafkaTLS     = "cloud-kafka-tls"
)

// service is one line of a rendered services.txt.
type service struct {
	host, name string
	// user is the account the service runs as, "uid:gid".
	user string
	argv []string
}

// where is what a path in a container resolves to: a named volume and the
// path inside it.
type where struct{ volume, sub string }

func TestComposeFile(t *testing.T) {
	root := harness.RepoRoot(t)
	project := load(t, root)
	hosts, services, files := render(t, root)

	t.Run("images pinned", func(t *testing.T) { checkImages(t, root, project) })
	t.Run("hosts and networks", func(t *testing.T) { checkHosts(t, project, hosts) })
	t.Run("services run what render writes", func(t *testing.T) { checkServices(t, project, hosts, services) })
	t.Run("files reach their services", func(t *testing.T) { checkFiles(t, project, hosts, services, files) })
	t.Run("kafka", func(t *testing.T) { checkKafka(t, root, project) })
	t.Run("same topology as conf", func(t *testing.T) { checkTopology(t, root) })
	t.Run("bind mounts and configs exist", func(t *testing.T) { checkSources(t, project) })
	t.Run("workloads reach no private socket", func(t *testing.T) { checkPrivateSockets(t, project) })
	t.Run("every enroll step has its entries", func(t *testing.T) { checkEntries(t, project, files) })
	t.Run("scripts parse", func(t *testing.T) {
		for _, script := range []string{"conf/compose/edgeid-compose.sh", "conf/compose/kafka/run.sh"} {
			if out, err := exec.Command("sh", "-n", filepath.Join(root, script)).CombinedOutput(); err != nil {
				t.Errorf("sh -n %s: %v\n%s", script, err, out)
			}
		}
	})
}

// load reads docker-compose.yml the way docker compose does, with schema
// validation and the consistency checks (references between services,
// volumes, networks and configs) on.
func load(t *testing.T, root string) *types.Project {
	t.Helper()
	ctx := context.Background()
	details, err := loader.LoadConfigFiles(ctx, []string{filepath.Join(root, composeFile)}, root)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	details.Environment = types.Mapping{}
	// Every profile: the smoke client is checked too.
	project, err := loader.LoadWithContext(ctx, *details, func(o *loader.Options) {
		o.SetProjectName("edgeid", true)
	}, loader.WithProfiles([]string{"*"}))
	if err != nil {
		t.Fatalf("%s does not validate: %v", composeFile, err)
	}
	return project
}

// render runs `edgeid render` on the compose topology and returns the hosts,
// their services (services.txt) and their files (path on the host → content).
func render(t *testing.T, root string) ([]string, []service, map[string]map[string]string) {
	t.Helper()
	plugins := t.TempDir()
	// render only hashes the plugins and the DeepStream app; the compose
	// render service hashes the image's own builds the same way.
	for _, p := range []string{"edgeid-upstreamauthority-vaultpki", "edgeid-nodeattestor-kubeedge-server",
		"edgeid-nodeattestor-kubeedge-agent", "edgeid-workloadattestor-deepstream", "deepstream-test5-app"} {
		if err := os.WriteFile(filepath.Join(plugins, p), []byte(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	var stderr bytes.Buffer
	// As the compose render step runs it (a throw-away demo Vault).
	args := []string{"render", "-f", filepath.Join(root, composeTopo), "--out", out, "--plugin-dir", plugins, "--insecure-local-unseal"}
	if !strings.Contains(readFile(t, root, "conf/compose/edgeid-compose.sh"), "--insecure-local-unseal") {
		t.Errorf("the compose render step does not pass --insecure-local-unseal, which this test assumes")
	}
	if err := cli.Run(context.Background(), args, io.Discard, &stderr); err != nil {
		t.Fatalf("edgeid %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	var services []service
	files := map[string]map[string]string{}
	for _, e := range entries {
		host := e.Name()
		hosts = append(hosts, host)
		files[host] = map[string]string{}
		hostDir := filepath.Join(out, host)
		err := filepath.WalkDir(hostDir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(hostDir, p)
			if rel == "services.txt" {
				services = append(services, parseServices(t, host, data)...)
				return nil
			}
			if rel == "ownership.txt" {
				// Read by the render step itself, which applies it.
				script := readFile(t, root, "conf/compose/edgeid-compose.sh")
				if !strings.Contains(script, "ownership.txt") || !strings.Contains(script, "apply_ownership") {
					t.Errorf("the compose render step does not apply %s/ownership.txt", host)
				}
				return nil
			}
			files[host]["/"+filepath.ToSlash(rel)] = string(data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(hosts) == 0 || len(services) == 0 {
		t.Fatalf("edgeid render wrote no hosts or no services into %s", out)
	}
	return hosts, services, files
}

func parseServices(t *testing.T, host string, data []byte) []service {
	var out []service
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, "\t", 3)
		if len(fields) != 3 {
			t.Fatalf("%s/services.txt: malformed line %q", host, line)
		}
		out = append(out, service{host: host, name: fields[0], user: fields[1], argv: strings.Fields(fields[2])})
	}
	return out
}

func checkImages(t *testing.T, root string, p *types.Project) {
	pinned := regexp.MustCompile(`^[a-z0-9./_-]+:[0-9][0-9A-Za-z._-]*$`)
	for _, s := range p.Services {
		if !pinned.MatchString(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a version", s.Name, s.Image)
		}
	}
	if got := p.Services["cloud-vault"].Image; got != vaultImage {
		t.Errorf("cloud-vault image = %q, want %q", got, vaultImage)
	}
	if img := p.Services[kafkaService].Image; !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("%s image = %q, want apache/kafka:<version>", kafkaService, img)
	}

	// The Dockerfile's bases are pinned, SPIRE at the version the project
	// pins everywhere else (scripts/versions.sh).
	versions := readFile(t, root, "scripts/versions.sh")
	spire := strings.TrimPrefix(regexp.MustCompile(`(?m)^SPIRE_VERSION=(\S+)`).FindStringSubmatch(versions)[1], "v")
	vault := strings.TrimPrefix(regexp.MustCompile(`(?m)^VAULT_VERSION=(\S+)`).FindStringSubmatch(versions)[1], "v")
	if vaultImage != "hashicorp/vault:"+vault {
		t.Errorf("compose Vault %s, scripts/versions.sh pins %s", vaultImage, vault)
	}
	dockerfile := readFile(t, root, "scripts/docker/Dockerfile")
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(dockerfile, -1)
	var spireImages []string
	for _, m := range froms {
		if !pinned.MatchString(m[1]) {
			t.Errorf("Dockerfile: FROM %s is not pinned to a version", m[1])
		}
		if strings.HasPrefix(m[1], "ghcr.io/spiffe/") {
			spireImages = append(spireImages, m[1])
		}
	}
	want := []string{"ghcr.io/spiffe/spire-server:" + spire, "ghcr.io/spiffe/spire-agent:" + spire}
	if !reflect.DeepEqual(spireImages, want) {
		t.Errorf("Dockerfile SPIRE images = %v, want %v", spireImages, want)
	}
	// Every program the compose services run from /opt/edgeid/bin is in
	// the image: the Dockerfile builds edgeid's and copies SPIRE's.
	for _, prog := range []string{"spire-server", "spire-agent"} {
		if !strings.Contains(dockerfile, binDir+"/"+prog) {
			t.Errorf("Dockerfile does not install %s/%s", binDir, prog)
		}
	}
	for _, pkg := range []string{"./orchestrator/cmd/edgeid", "./helper/cmd/edgeid-helper", "./plugins/cmd/...", "./test/standin/deepstream-test5-app"} {
		if !strings.Contains(dockerfile, pkg) {
			t.Errorf("Dockerfile does not build %s", pkg)
		}
	}
}

func checkHosts(t *testing.T, p *types.Project, hosts []string) {
	for _, h := range hosts {
		s, ok := p.Services[h]
		if !ok {
			t.Errorf("no service for host %s (it holds the host's network and PID namespaces)", h)
			continue
		}
		if s.Hostname != h || len(s.Networks) == 0 || s.NetworkMode != "" {
			t.Errorf("host service %s: hostname %q, networks %v, network_mode %q; want hostname %s on a compose network",
				h, s.Hostname, s.Networks, s.NetworkMode, h)
		}
	}
	for _, s := range p.Services {
		switch {
		case s.NetworkMode == "host" || s.Pid == "host" || s.Privileged:
			t.Errorf("service %s uses the host's network or PID namespace or is privileged", s.Name)
		case s.NetworkMode != "" && s.NetworkMode != "none" && !slices.Contains(hosts, strings.TrimPrefix(s.NetworkMode, "service:")):
			t.Errorf("service %s: network_mode %q is not one of the hosts %v", s.Name, s.NetworkMode, hosts)
		case s.Pid != "" && s.Pid != s.NetworkMode:
			t.Errorf("service %s: pid %q and network_mode %q name different hosts", s.Name, s.Pid, s.NetworkMode)
		}
	}
}

// composeName is the compose service that runs a rendered service.
func composeName(s service) string { return s.host + "-" + s.name }

func checkServices(t *testing.T, p *types.Project, hosts []string, services []service) {
	want := map[string]bool{}
	for _, rs := range services {
		name := composeName(rs)
		want[name] = true
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("rendered service %s of host %s has no compose service %s", rs.name, rs.host, name)
			continue
		}
		if s.NetworkMode != "service:"+rs.host || s.Pid != "service:"+rs.host {
			t.Errorf("%s: network_mode %q, pid %q; want both service:%s", name, s.NetworkMode, s.Pid, rs.host)
		}
		got := append(append([]string{}, s.Entrypoint...), s.Command...)
		argv := rs.argv
		if rs.name == "vault" {
			// The Vault image's own binary, with the rendered arguments.
			if s.Image != vaultImage {
				t.Errorf("%s: image %q, want %q", name, s.Image, vaultImage)
			}
			argv = append([]string{"vault"}, argv[1:]...)
		}
		if !reflect.DeepEqual(got, argv) {
			t.Errorf("%s runs %q\nservices.txt of %s says %q", name, got, rs.host, argv)
		}
		// The account edgeid gives the service, never root.
		if s.User != rs.user {
			t.Errorf("%s runs as user %q; services.txt of %s says %q", name, s.User, rs.host, rs.user)
		}
		// An agent that serves workloads attests other uids' processes.
		if rs.name == "spire-agent" {
			for _, c := range []string{"SYS_PTRACE", "DAC_READ_SEARCH"} {
				if !slices.Contains(s.CapAdd, c) {
					t.Errorf("%s: cap_add lacks %s (it attests other uids' processes)", name, c)
				}
			}
		}
	}
	// Every long-running service of a host comes from services.txt, except
	// the Kafka broker and its helper, which compose adds (Kafka is external
	// to edgeid in the compose topology).
	for _, s := range p.Services {
		if !strings.HasPrefix(s.NetworkMode, "service:") || s.Restart == types.RestartPolicyNo ||
			s.Name == kafkaService || s.Name == kafkaTLS {
			continue
		}
		if !want[s.Name] {
			t.Errorf("compose service %s runs nothing that edgeid render lists for its host", s.Name)
		}
	}
}

// resolve says which named volume holds the file at p in service s: the
// mount with the longest target containing p. ok is false when p is in the
// container's own filesystem (or a bind mount).
func resolve(s types.ServiceConfig, p string) (where, bool) {
	best := -1
	var w where
	for _, v := range s.Volumes {
		target := path.Clean(v.Target)
		if p != target && !strings.HasPrefix(p, target+"/") {
			continue
		}
		if len(target) <= best {
			continue
		}
		best = len(target)
		if v.Type != types.VolumeTypeVolume {
			w = where{}
			continue
		}
		w = where{volume: v.Source, sub: strings.TrimPrefix(strings.TrimPrefix(p, target), "/")}
	}
	return w, w.volume != ""
}

var quotedPath = regexp.MustCompile(`"(/[^"\s]*)"|-c (/[^"\s]+)`)

// httpPaths are the health endpoints' URL paths a SPIRE config names
// (health_checks live_path, ready_path): not files.
var httpPaths = map[string]bool{"/live": true, "/ready": true}

// referencedPaths are the absolute paths a rendered file names, programs
// under /opt/edgeid/bin aside (they are in the image).
func referencedPaths(content string) []string {
	var out []string
	for _, m := range quotedPath.FindAllStringSubmatch(content, -1) {
		p := m[1] + m[2]
		if !strings.HasPrefix(p, binDir+"/") && !httpPaths[p] {
			out = append(out, path.Clean(p))
		}
	}
	return out
}

func checkFiles(t *testing.T, p *types.Project, hosts []string, services []service, files map[string]map[string]string) {
	renderSvc := p.Services["render"]
	for _, host := range hosts {
		// Where render writes each of the host's files.
		written := map[string]where{}
		for f := range files[host] {
			if strings.HasPrefix(f, "/etc/systemd/system/") {
				// Units for hosts that run systemd; compose runs each
				// service itself.
				continue
			}
			w, ok := resolve(renderSvc, renderMount+"/"+host+f)
			if !ok {
				t.Errorf("render writes %s of host %s into no volume", f, host)
				continue
			}
			written[f] = w
		}

		// Each service of the host: its config is the rendered file, and
		// every path the config names is on a volume.
		refs := map[string][]string{}
		for _, rs := range services {
			if rs.host != host {
				continue
			}
			s, ok := p.Services[composeName(rs)]
			if !ok {
				continue // reported by checkServices
			}
			for i, a := range rs.argv {
				if a != "-config" || i+1 >= len(rs.argv) {
					continue
				}
				conf := rs.argv[i+1]
				content, ok := files[host][conf]
				if !ok {
					t.Errorf("%s: config %s is not a file edgeid render writes for %s", s.Name, conf, host)
					continue
				}
				if w, ok := resolve(s, conf); !ok || w != written[conf] {
					t.Errorf("%s reads %s from %+v; render writes it to %+v", s.Name, conf, w, written[conf])
				}
				for _, ref := range referencedPaths(content) {
					refs[s.Name] = append(refs[s.Name], ref)
					if _, ok := resolve(s, ref); !ok {
						t.Errorf("%s: %s (named in %s) is on no volume", s.Name, ref, conf)
					}
				}
			}
		}
		if vb, ok := p.Services[host+"-vault-bootstrap"]; ok {
			if w, ok := resolve(vb, "/var/lib/edgeid/vault/bootstrap.hcl"); !ok || w != written["/var/lib/edgeid/vault/bootstrap.hcl"] {
				t.Errorf("%s does not see the rendered bootstrap.hcl (%+v)", vb.Name, w)
			}
			for _, ref := range referencedPaths(files[host]["/var/lib/edgeid/vault/bootstrap.hcl"]) {
				refs[vb.Name] = append(refs[vb.Name], ref)
			}
		}

		// A path named anywhere on the host is the same file in every
		// container of the host that uses it (an agent's socket and its
		// workloads' agent_address, a bundle written by an enroll step and
		// read by an agent, ...), and the file render wrote there. The
		// host's enroll step (edgeid-compose.sh) uses them all.
		var all []string
		for _, r := range refs {
			all = append(all, r...)
		}
		sort.Strings(all)
		all = slices.Compact(all)
		for _, ref := range all {
			first, firstSvc := where{}, ""
			switch {
			case written[ref] != where{}:
				first, firstSvc = written[ref], "render"
			case ref == kubeEdgeCA:
				first, _ = resolve(renderSvc, renderedCA)
				firstSvc = "render"
			case strings.HasPrefix(ref, "/etc/kubeedge/"):
				first, _ = resolve(renderSvc, renderMount+"/"+host+ref)
				firstSvc = "render"
			}
			for _, s := range p.Services {
				if s.NetworkMode != "service:"+host || (s.Name != host+"-enroll" && !slices.Contains(refs[s.Name], ref)) {
					continue
				}
				w, ok := resolve(s, ref)
				if !ok {
					continue
				}
				if firstSvc == "" {
					first, firstSvc = w, s.Name
				} else if w != first {
					t.Errorf("host %s: %s is %+v in %s but %+v in %s", host, ref, w, s.Name, first, firstSvc)
				}
			}
		}
	}

	// The smoke client reads the Kafka client config the pipeline's helper
	// writes.
	for _, rs := range services {
		if !strings.HasPrefix(rs.name, "helper-") {
			continue
		}
		smoke, ok := p.Services[rs.host+"-kafka-smoke"]
		if !ok {
			if rs.host == "edge-a-1" {
				t.Errorf("no service edge-a-1-kafka-smoke (profile smoke)")
			}
			continue
		}
		certDir := regexp.MustCompile(`(?m)^cert_dir = "(.*)"`).FindStringSubmatch(files[rs.host][rs.argv[len(rs.argv)-1]])
		props := path.Join(certDir[1], "kafka.properties")
		uses := regexp.MustCompile(`-F (\S+)`).FindAllStringSubmatch(strings.Join(smoke.Command, " "), -1)
		if len(uses) == 0 {
			t.Errorf("%s runs kcat with no -F config", smoke.Name)
		}
		for _, u := range uses {
			if u[1] != props {
				t.Errorf("%s: kcat -F %s; the helper writes %s", smoke.Name, u[1], props)
			}
		}
		got, ok1 := resolve(smoke, props)
		want, ok2 := resolve(p.Services[composeName(rs)], props)
		if !ok1 || !ok2 || got != want {
			t.Errorf("%s reads %s from %+v; the helper writes it to %+v", smoke.Name, props, got, want)
		}
	}

	// The cloud enroll step writes the cloud bundle into every edge host's
	// state, where that host's upstream agent reads it.
	enroll := p.Services["cloud-enroll"]
	for _, rs := range services {
		if rs.name != "upstream-agent" {
			continue
		}
		bundle := "/var/lib/edgeid/spire/bootstrap-cloud.pem"
		if !strings.Contains(files[rs.host]["/var/lib/edgeid/spire/upstream-agent.conf"], `trust_bundle_path = "`+bundle+`"`) {
			t.Errorf("%s: upstream-agent.conf does not read %s", rs.host, bundle)
		}
		got, _ := resolve(enroll, hostsMount+"/"+rs.host+bundle)
		want, _ := resolve(p.Services[composeName(rs)], bundle)
		if got.volume == "" || got != want {
			t.Errorf("cloud-enroll writes %s of %s to %+v; the upstream agent reads %+v", bundle, rs.host, got, want)
		}
		// enroll-cloud names each site by the edge server config's header.
		if !regexp.MustCompile(`(?m)^# Edge server of site ".+":`).MatchString(files[rs.host]["/var/lib/edgeid/spire/server.conf"]) {
			t.Errorf("%s: server.conf lacks the site header edgeid-compose.sh reads", rs.host)
		}
	}
}

func checkKafka(t *testing.T, root string, p *types.Project) {
	tlsSvc, broker := p.Services[kafkaTLS], p.Services[kafkaService]
	var helperConf string
	for _, c := range tlsSvc.Configs {
		helperConf = p.Configs[c.Source].File
	}
	cfg, _, err := helperconfig.Load(helperConf, helperconfig.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("kafka helper config: %v", err)
	}
	props := map[string]string{}
	for _, c := range broker.Configs {
		if strings.HasSuffix(c.Target, "/server.properties") {
			for _, line := range strings.Split(readFile(t, p.Configs[c.Source].File, ""), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
					props[k] = v
				}
			}
		}
	}
	if props["ssl.client.auth"] != "required" || props["advertised.listeners"] != "SSL://cloud:9093" ||
		props["listener.security.protocol.map"] != "SSL:SSL,CONTROLLER:SSL" {
		t.Errorf("server.properties: ssl.client.auth=%q advertised.listeners=%q listener.security.protocol.map=%q",
			props["ssl.client.auth"], props["advertised.listeners"], props["listener.security.protocol.map"])
	}
	top, err := topology.ParseFile(filepath.Join(root, composeTopo))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(top.Kafka.Brokers, []string{"cloud:9093"}) || top.Kafka.EndpointIdentification != "https" {
		t.Errorf("compose topology Kafka: brokers %v, endpoint identification %q", top.Kafka.Brokers, top.Kafka.EndpointIdentification)
	}
	// The broker reads the very files the helper writes.
	for key, name := range map[string]string{"ssl.keystore.location": cfg.CombinedPEMFileName, "ssl.truststore.location": cfg.SVIDBundleFileName} {
		file := path.Join(cfg.CertDir, name)
		if props[key] != file {
			t.Errorf("server.properties %s = %q; the helper writes %s", key, props[key], file)
		}
		wrote, ok1 := resolve(tlsSvc, file)
		reads, ok2 := resolve(broker, file)
		if !ok1 || !ok2 || wrote != reads {
			t.Errorf("%s: helper writes %+v, Kafka reads %+v", file, wrote, reads)
		}
	}
	// The helper talks to the cloud host's agent.
	agentSock, _ := resolve(p.Services["cloud-spire-agent"], path.Join(orender.DefaultHostRoot, orender.PublicSocketDir, "agent.sock"))
	if w, ok := resolve(tlsSvc, path.Clean(strings.TrimPrefix(cfg.AgentAddress, "unix://"))); !ok || w != agentSock {
		t.Errorf("kafka helper agent_address %s is %+v; the cloud agent's socket is %+v", cfg.AgentAddress, w, agentSock)
	}
}

// checkTopology: the compose topology is conf/topology.hcl's, Kafka aside.
func checkTopology(t *testing.T, root string) {
	c, err := topology.ParseFile(filepath.Join(root, composeTopo))
	if err != nil {
		t.Fatal(err)
	}
	s, err := topology.ParseFile(filepath.Join(root, sampleTopo))
	if err != nil {
		t.Fatal(err)
	}
	// Where each block was defined differs, naturally.
	c.Vault.DefRange, s.Vault.DefRange = hcl.Range{}, hcl.Range{}
	for name, pair := range map[string][2]any{
		"users":        {c.Users, s.Users},
		"trust_domain": {c.TrustDomain, s.TrustDomain},
		"vault":        {c.Vault, s.Vault},
		"cloud":        {c.Cloud, s.Cloud},
		"kubeedge":     {c.KubeEdge, s.KubeEdge},
		"sites":        {c.Sites, s.Sites},
		"tunnels":      {c.Tunnels, s.Tunnels},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s differs from %s in %s:\n%+v\n%+v", composeTopo, sampleTopo, name, pair[0], pair[1])
		}
	}
}

// checkEntries: each host's enroll step registers the spire/entries.json
// render wrote for that host's server (edgeid-compose.sh), which must exist
// and reach the step through a volume.
func checkEntries(t *testing.T, p *types.Project, files map[string]map[string]string) {
	entries := path.Join(orender.DefaultHostRoot, orender.EntriesFile)
	for _, s := range p.Services {
		host, ok := strings.CutSuffix(s.Name, "-enroll")
		if !ok {
			continue
		}
		if _, ok := files[host][entries]; !ok {
			t.Errorf("%s registers %s, but render wrote none for host %s", s.Name, entries, host)
		}
		if _, ok := resolve(s, entries); !ok {
			t.Errorf("%s cannot read %s: no volume holds it", s.Name, entries)
		}
	}
}

// checkPrivateSockets: a workload container (a pipeline's helper, the Kafka
// broker and its helper, the smoke client) mounts the agents' public socket
// directory and nothing that reaches the private one, where the SPIRE
// servers' admin sockets are: with those a workload could register any
// identity.
func checkPrivateSockets(t *testing.T, p *types.Project) {
	private := path.Join(orender.DefaultHostRoot, orender.PrivateSocketDir)
	public := path.Join(orender.DefaultHostRoot, orender.PublicSocketDir)
	for _, s := range p.Services {
		workload := strings.Contains(s.Name, "-helper-") || strings.HasSuffix(s.Name, "-kafka-smoke") ||
			s.Name == kafkaService || s.Name == kafkaTLS
		if !workload {
			continue
		}
		for _, v := range s.Volumes {
			target := path.Clean(v.Target)
			if target == private || strings.HasPrefix(private, target+"/") || strings.HasPrefix(target, private+"/") {
				t.Errorf("workload service %s mounts %s at %s, which reaches the private sockets in %s", s.Name, v.Source, target, private)
			}
		}
		if strings.Contains(s.Name, "-helper-") {
			if _, ok := resolve(s, path.Join(public, "agent.sock")); !ok {
				t.Errorf("workload service %s does not mount the agent socket directory %s", s.Name, public)
			}
		}
	}
}

func checkSources(t *testing.T, p *types.Project) {
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s: bind mount source: %v", s.Name, err)
				}
			}
		}
		for _, c := range s.Configs {
			cfg, ok := p.Configs[c.Source]
			if !ok {
				t.Errorf("service %s: no config %q", s.Name, c.Source)
				continue
			}
			if _, err := os.Stat(cfg.File); err != nil {
				t.Errorf("service %s: config %s: %v", s.Name, c.Source, err)
			}
		}
		// One-shot steps run the compose script, which must exist.
		for _, a := range s.Command {
			if strings.HasPrefix(a, "/etc/edgeid/conf/compose/") {
				if w := bindSource(s, a); w == "" {
					t.Errorf("service %s: %s comes from no bind mount", s.Name, a)
				} else if _, err := os.Stat(w); err != nil {
					t.Errorf("service %s: %v", s.Name, err)
				}
			}
		}
	}
}

// bindSource is the host file behind p in s, through a bind mount.
func bindSource(s types.ServiceConfig, p string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && strings.HasPrefix(p, v.Target+"/") {
			return filepath.Join(v.Source, strings.TrimPrefix(p, v.Target+"/"))
		}
	}
	return ""
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
