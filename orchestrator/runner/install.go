package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/kubeedgeca"
	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// Phase 1 of up: every host's files and the KubeEdge node credentials.

// install writes every host's files and the KubeEdge credentials.
func (r *Runner) install(context.Context) error {
	r.changed = map[string]bool{}
	for _, h := range r.plan.Hosts {
		if !r.isLocal(h.Name) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(h.Root), 0o755); err != nil {
			return err
		}
		changed, err := render.Install(h, r.privsep)
		if err != nil {
			return err
		}
		for _, c := range changed {
			r.changed[c] = true
		}
		for _, s := range h.Services {
			if s.Kind == render.KindVault && !r.env.Embedded {
				if err := ensureVaultTLS(h, r.owner(s.Account)); err != nil {
					return err
				}
			}
		}
	}
	if r.cfg.Host != "" {
		// KubeEdge's cloudcore issued this host's node certificate, and
		// edgecore (root) owns it; the agent reads it as the control
		// account.
		for _, ref := range r.services(render.KindSpireAgent, "") {
			if err := grantGroupRead(r.owner(ref.s.Account), ref.s.NodeCert, ref.s.NodeKey); err != nil {
				return fmt.Errorf("KubeEdge node credentials of %s: %w", ref.h.Name, err)
			}
		}
		return nil
	}
	return r.kubeedgeCredentials()
}

// kubeedgeCredentials plays cloudcore's CA in the embedded mode: one CA
// for the cluster, and an edgecore-style certificate for every node,
// issued again when missing or within 30% of its end of life.
func (r *Runner) kubeedgeCredentials() error {
	caDir := filepath.Join(r.cfg.RunDir, "kubeedge-ca")
	certPath, keyPath := filepath.Join(caDir, "rootCA.crt"), filepath.Join(caDir, "rootCA.key")
	var ca *kubeedgeca.CA
	certPEM, err1 := os.ReadFile(certPath)
	keyPEM, err2 := os.ReadFile(keyPath)
	if err1 == nil && err2 == nil {
		c, err := kubeedgeca.Load(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("kubeedge CA in %s: %w", caDir, err)
		}
		ca = c
	} else {
		c, err := kubeedgeca.New(kubeedgeca.Options{})
		if err != nil {
			return err
		}
		key, err := c.KeyPEM()
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomicMkdir(keyPath, key, 0o600, fsutil.Keep); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomicMkdir(certPath, c.CertificatePEM(), 0o644, fsutil.Keep); err != nil {
			return err
		}
		ca = c
	}
	for _, h := range r.plan.Hosts {
		if err := fsutil.WriteFileAtomicMkdir(filepath.Join(h.Root, "kubeedge", "ca", "rootCA.crt"), ca.CertificatePEM(), 0o644, fsutil.Keep); err != nil {
			return err
		}
	}
	for _, ref := range r.services(render.KindSpireAgent, "") {
		s := ref.s
		if s.NodeCert == "" || certFresh(s.NodeCert) {
			continue
		}
		creds, err := ca.IssueNode(ref.h.Name, kubeedgeca.SignOptions{})
		if err != nil {
			return fmt.Errorf("issue node certificate for %s: %w", ref.h.Name, err)
		}
		if err := creds.WriteFiles(s.NodeCert, s.NodeKey); err != nil {
			return err
		}
		// The agent reads them as the control account.
		if err := chownFiles(r.owner(s.Account), s.NodeCert, s.NodeKey); err != nil {
			return err
		}
	}
	return nil
}

// certFresh reports whether the certificate at path exists and has more
// than 30% of its life left (edgecore rotates at 70-90%).
func certFresh(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return false
	}
	c := certs[0]
	life := c.NotAfter.Sub(c.NotBefore)
	return time.Until(c.NotAfter) > life*3/10
}

// unsealRecipient loads or creates the age identity that encrypts a
// managed Vault's local key share, and returns its recipient. It is called
// only where render.UsesLocalUnsealIdentity: an embedded run, or the
// recovery share of a Vault that unseals itself and has no custodians;
// never for custodians, whose identities stay off the host.
func (r *Runner) unsealRecipient(root string) (string, error) {
	h := &render.Host{Root: root}
	path := render.UnsealIdentityPath(h)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return "", err
		}
		if err := fsutil.WriteFileAtomicMkdir(path, []byte(id.String()+"\n"), 0o600, fsutil.Keep); err != nil {
			return "", err
		}
		return id.Recipient().String(), nil
	}
	if err != nil {
		return "", err
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil || len(ids) != 1 {
		return "", fmt.Errorf("unseal identity %s: %v", path, err)
	}
	x, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return "", fmt.Errorf("unseal identity %s: not an X25519 identity", path)
	}
	return x.Recipient().String(), nil
}
