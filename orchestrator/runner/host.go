package runner

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/fsutil"
	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// TrustBundleExport is where a real cloud host leaves the trust domain's
// bundle for the operator to copy to the other hosts (--trust-bundle).
func TrustBundleExport(root string) string {
	return filepath.Join(root, "export", "trust-bundle.pem")
}

// exportTrustBundle writes the bundle of the first local cloud server
// started by jobs to TrustBundleExport on a real host.
func (r *Runner) exportTrustBundle(ctx context.Context, jobs []job) error {
	if r.cfg.Host == "" || len(jobs) == 0 {
		return nil
	}
	pem, err := r.cp.bundlePEM(ctx, jobs[0].ref)
	if err != nil {
		return err
	}
	path := TrustBundleExport(r.cfg.Root)
	if err := fsutil.WriteFileAtomicMkdir(path, pem, 0o644, fsutil.Keep); err != nil {
		return err
	}
	r.logf("      trust bundle for the other hosts: %s", path)
	return nil
}

// copyTrustBundle gives an agent whose server runs on another host the
// trust bundle the operator copied here (Config.TrustBundle). The file
// must hold at least one CA certificate; a wrong or torn copy is refused
// before it reaches the agent.
func (r *Runner) copyTrustBundle(serverRef, path string) error {
	if r.cfg.TrustBundle == "" {
		return fmt.Errorf("the agent for %s bootstraps from another host: give the trust bundle with --trust-bundle (copy %s from the cloud host)",
			serverRef, TrustBundleExport(render.DefaultHostRoot))
	}
	data, err := os.ReadFile(r.cfg.TrustBundle)
	if err != nil {
		return fmt.Errorf("trust bundle: %w", err)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return fmt.Errorf("trust bundle %s: %w", r.cfg.TrustBundle, err)
	}
	for _, c := range certs {
		if !c.IsCA {
			return fmt.Errorf("trust bundle %s: %q is not a CA certificate", r.cfg.TrustBundle, c.Subject)
		}
	}
	return fsutil.WriteFileAtomicMkdir(path, data, 0o644, fsutil.Keep)
}

// vaultTLSLifetime is how long the managed Vault's self-signed certificate
// lives; ensureVaultTLS replaces it when less than 30% remains.
const vaultTLSLifetime = 365 * 24 * time.Hour

// ensureVaultTLS makes the managed Vault's TLS certificate on a real host:
// self-signed (clients pin it as their CA), with the host's name and
// address as SANs, the key 0600. A certificate with more than 30% of its
// life left is kept, so re-runs change nothing.
func ensureVaultTLS(h *render.Host, vault fsutil.Owner) error {
	certPath, keyPath := render.VaultTLSFiles(h)
	if _, err := os.Stat(keyPath); err == nil && certFresh(certPath) {
		return chownFiles(vault, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: h.Name, Organization: []string{"edgeid managed Vault"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(vaultTLSLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		DNSNames:              []string{h.Name, "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(h.Addr); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if h.Addr != h.Name {
		tmpl.DNSNames = append(tmpl.DNSNames, h.Addr)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// Vault reads its key as the control account.
	if err := fsutil.WriteFileAtomicMkdir(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600, vault); err != nil {
		return err
	}
	return fsutil.WriteFileAtomicMkdir(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644, fsutil.Keep)
}

// checkHost checks that Config.Host is a host of the topology.
func (r *Runner) checkHost() error {
	hosts := append([]string{}, r.top.Cloud.Hosts...)
	if r.top.Vault.Managed {
		hosts = append(hosts, r.top.Vault.Host)
	}
	for _, s := range r.top.Sites {
		for _, n := range s.Nodes {
			hosts = append(hosts, n.Name)
		}
	}
	if slices.Contains(hosts, r.cfg.Host) {
		return nil
	}
	slices.Sort(hosts)
	return fmt.Errorf("runner: no host %q in %s (hosts: %s)", r.cfg.Host, r.top.Path, strings.Join(slices.Compact(hosts), ", "))
}
