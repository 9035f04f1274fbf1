package runner

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	bootstrapcli "github.com/edgeid/edgeid/bootstrap/cli"
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
		if err := r.startAll([]job{{ref, func() error { return dial(ctx, ref.s.Addr) }}}); err != nil {
			return err
		}
		cfgPath := filepath.Join(ref.h.Root, "vault", "bootstrap.hcl")
		if done, err := r.bootstrapCurrent(ctx, ref, cfgPath); err != nil {
			return err
		} else if done {
			r.logf("      Vault %s is unsealed and bootstrapped with this configuration already; bootstrap skipped", addr)
			continue
		}
		var stdout, stderr bytes.Buffer
		if err := bootstrapcli.Run(ctx, []string{"vault", "--config", cfgPath}, &stdout, &stderr); err != nil {
			return fmt.Errorf("bootstrap of %s: %w%s\n%s", addr, err, r.custodyHint(), lastLines(stderr.String(), 15))
		}
		if err := render.WriteFileAtomic(filepath.Join(ref.h.Root, "logs", "bootstrap.log"), stderr.Bytes(), 0o600); err != nil {
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

func (r *Runner) server(ref svcRef) serverCLI {
	return serverCLI{bin: r.env.Bins.SpireServer, socket: ref.s.Socket}
}

func (r *Runner) upCloud(ctx context.Context) error {
	var jobs []job
	for _, ref := range r.services(render.KindSpireServer, "") {
		if ref.s.Site == "" {
			srv := r.server(ref)
			jobs = append(jobs, job{ref, func() error { return srv.healthy(ctx) }})
		}
	}
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
	pem, err := r.server(svcRef{h, s}).bundlePEM(ctx)
	if err != nil {
		return err
	}
	return render.WriteFileAtomic(path, pem, 0o644)
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
		c, err := r.server(svcRef{h, s}).ensureEntries(ctx, byServer[ref])
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
		agent := agentCLI{bin: r.env.Bins.SpireAgent, socket: ref.s.Socket}
		jobs = append(jobs, job{ref, func() error { return agent.healthy(ctx) }})
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
	token, err := r.server(svcRef{h, s}).joinToken(ctx, ref.s.AgentID)
	if err != nil {
		return err
	}
	return render.WriteFileAtomicOwned(filepath.Join(ref.h.Root, "spire", "join-token"), []byte(token+"\n"), 0o600, r.owner(ref.s.Account))
}

func (r *Runner) upEdgeServers(ctx context.Context) error {
	var jobs []job
	for _, ref := range r.services(render.KindSpireServer, "") {
		if ref.s.Site != "" {
			srv := r.server(ref)
			jobs = append(jobs, job{ref, func() error { return srv.healthy(ctx) }})
		}
	}
	return r.startAll(jobs)
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
		agent := agentCLI{bin: r.env.Bins.SpireAgent, socket: ref.s.Socket}
		jobs = append(jobs, job{ref, func() error { return agent.healthy(ctx) }})
	}
	return r.startAll(jobs)
}

func (r *Runner) upKafka(ctx context.Context) error {
	var jobs []job
	for _, ref := range r.services(render.KindKafka, "") {
		jobs = append(jobs, job{ref, func() error { return dial(ctx, ref.s.Addr) }})
	}
	return r.startAll(jobs)
}

func (r *Runner) upWorkloads(ctx context.Context) error {
	var jobs []job
	for _, ref := range r.services(render.KindHelper, "") {
		jobs = append(jobs, job{ref, func() error { return svidValid(ref.s.ReadyFile) }})
	}
	return r.startAll(jobs)
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
