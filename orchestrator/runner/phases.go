package runner

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// The phases of up after install, each bringing one layer of the nested
// topology up, in dependency order.

func (r *Runner) upVault(ctx context.Context) error {
	if !r.top.Vault.Managed {
		r.logf("      external Vault at %s: nothing to start", r.top.Vault.Address)
		return nil
	}
	for _, ref := range r.services(render.KindVault, "") {
		addr := ref.s.URL
		if err := r.startAll(r.jobs(ctx, ref)); err != nil {
			return err
		}
		cfgPath := filepath.Join(ref.h.Root, "vault", "bootstrap.hcl")
		if done, err := r.bootstrapCurrent(ctx, ref, cfgPath); err != nil {
			return err
		} else if done {
			r.logf("      Vault %s is unsealed and bootstrapped with this configuration already; bootstrap skipped", addr)
			continue
		}
		log, err := r.cp.bootstrapVault(ctx, cfgPath)
		if err != nil {
			return fmt.Errorf("bootstrap of %s: %w%s", addr, err, r.custodyHint())
		}
		if err := fsutil.WriteFileAtomicMkdir(filepath.Join(ref.h.Root, "logs", "bootstrap.log"), log, 0o600, fsutil.Keep); err != nil {
			return err
		}
		// The bootstrap ran here, as root; the cloud servers read its
		// AppRole login files as the control account. The unseal identity
		// is not in this tree and stays root's.
		if err := chownTree(r.owner(ref.s.Account), filepath.Join(ref.h.Root, "vault", "bootstrap")); err != nil {
			return err
		}
		if err := r.markBootstrapped(cfgPath); err != nil {
			return err
		}
		r.logf("      Vault %s bootstrapped (PKI root %s, intermediate %s; root token revoked)", addr, r.top.Vault.PKIMount, r.top.Vault.PKIIntMount)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// jobs are the refs' services, each ready when the control plane says so.
func (r *Runner) jobs(ctx context.Context, refs ...svcRef) []job {
	jobs := make([]job, len(refs))
	for i, ref := range refs {
		jobs[i] = job{ref, func() error { return r.cp.ready(ctx, ref) }}
	}
	return jobs
}

// servers are the SPIRE servers of the cloud (cloud true) or of the sites.
func (r *Runner) servers(cloud bool) []svcRef {
	var out []svcRef
	for _, ref := range r.services(render.KindSpireServer, "") {
		if (ref.s.Site == "") == cloud {
			out = append(out, ref)
		}
	}
	return out
}

func (r *Runner) upCloud(ctx context.Context) error {
	jobs := r.jobs(ctx, r.servers(true)...)
	if err := r.startAll(jobs); err != nil {
		return err
	}
	return r.exportTrustBundle(ctx, jobs)
}

// writeBundle fetches a server's bundle into an agent's bootstrap file.
// An agent whose server runs on another host bootstraps from the trust
// bundle the operator copied from the cloud host instead.
func (r *Runner) writeBundle(ctx context.Context, serverRef string, path string) error {
	h, s := r.plan.Service(serverRef)
	if s == nil {
		return fmt.Errorf("no service %s", serverRef)
	}
	if !r.isLocal(h.Name) {
		return r.copyTrustBundle(serverRef, path)
	}
	pem, err := r.cp.bundlePEM(ctx, svcRef{h, s})
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomicMkdir(path, pem, 0o644, fsutil.Keep)
}

// createEntries registers the plan's entries held by the servers matching
// keep, before the agents that will serve them start.
func (r *Runner) createEntries(ctx context.Context, keep func(server string) bool) error {
	byServer := map[string][]render.Entry{}
	var servers []string
	for _, e := range r.plan.Entries {
		if !keep(e.Server) || !r.isLocal(strings.SplitN(e.Server, "/", 2)[0]) {
			continue
		}
		if _, seen := byServer[e.Server]; !seen {
			servers = append(servers, e.Server)
		}
		byServer[e.Server] = append(byServer[e.Server], e)
	}
	var total EntryCounts
	for _, ref := range servers {
		h, s := r.plan.Service(ref)
		c, err := r.cp.ensureEntries(ctx, svcRef{h, s}, byServer[ref])
		total.Created, total.Updated, total.Present = total.Created+c.Created, total.Updated+c.Updated, total.Present+c.Present
		if err != nil {
			return err
		}
	}
	r.logf("      registration entries: %s", total)
	return nil
}

func (r *Runner) isCloud(ref string) bool {
	_, s := r.plan.Service(ref)
	return s != nil && s.Site == ""
}

func (r *Runner) upCloudAgents(ctx context.Context) error {
	if err := r.createEntries(ctx, r.isCloud); err != nil {
		return err
	}
	var jobs []job
	for _, ref := range r.services(render.KindSpireAgent, "") {
		if !r.isCloud(ref.s.Server) {
			continue
		}
		if err := r.writeBundle(ctx, ref.s.Server, ref.s.BundlePath); err != nil {
			return err
		}
		if ref.s.NodeCert == "" {
			// The cloud host's agent joins with a one-time token, made
			// only when it has no SVID of its own yet.
			if err := r.ensureJoinToken(ctx, ref); err != nil {
				return err
			}
		}
		jobs = append(jobs, r.jobs(ctx, ref)...)
	}
	return r.startAll(jobs)
}

func (r *Runner) ensureJoinToken(ctx context.Context, ref svcRef) error {
	if svid, err := AgentSVID(ref.s.DataDir); err == nil && time.Now().Before(svid.NotAfter) {
		return nil
	}
	if r.proc(ref.h, ref.s).pid() != 0 {
		return nil
	}
	h, s := r.plan.Service(ref.s.Server)
	token, err := r.cp.joinToken(ctx, svcRef{h, s}, ref.s.AgentID)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomicMkdir(filepath.Join(ref.h.Root, "spire", "join-token"), []byte(token+"\n"), 0o600, r.owner(ref.s.Account))
}

func (r *Runner) upEdgeServers(ctx context.Context) error {
	return r.startAll(r.jobs(ctx, r.servers(false)...))
}

func (r *Runner) upEdgeAgents(ctx context.Context) error {
	if err := r.createEntries(ctx, func(s string) bool { return !r.isCloud(s) }); err != nil {
		return err
	}
	var jobs []job
	for _, ref := range r.services(render.KindSpireAgent, "") {
		if r.isCloud(ref.s.Server) {
			continue
		}
		if err := r.writeBundle(ctx, ref.s.Server, ref.s.BundlePath); err != nil {
			return err
		}
		jobs = append(jobs, r.jobs(ctx, ref)...)
	}
	return r.startAll(jobs)
}

// upKafka starts the demo broker, then the cloud Kafka gateway in front
// of it (the broker is its upstream); the pipelines reach only the gateway.
func (r *Runner) upKafka(ctx context.Context) error {
	if err := r.startAll(r.jobs(ctx, r.services(render.KindKafka, "")...)); err != nil {
		return err
	}
	return r.startAll(r.jobs(ctx, r.services(render.KindKafkaGateway, "")...))
}

func (r *Runner) upPrometheus(ctx context.Context) error {
	return r.startAll(r.jobs(ctx, r.services(render.KindPrometheus, "")...))
}

func (r *Runner) upWorkloads(ctx context.Context) error {
	return r.startAll(r.jobs(ctx, r.services(render.KindHelper, "")...))
}

// dial checks that something accepts TCP connections at addr.
func dial(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// svidValid checks that path holds a certificate that is valid now: a
// helper's SVID left from an earlier run does not count.
func svidValid(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if now := time.Now(); now.After(certs[0].NotAfter) || now.Before(certs[0].NotBefore) {
		return fmt.Errorf("%s: SVID not valid now (expired %s)", path, certs[0].NotAfter.Format(time.RFC3339))
	}
	return nil
}
