package runner

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/edgeid/edgeid/internal/pemutil"
	"github.com/edgeid/edgeid/orchestrator/render"
)

// CertInfo is what status shows of one certificate of the trust tree.
type CertInfo struct {
	Subject  string `json:"subject"`
	SPIFFEID string `json:"spiffe_id,omitempty"`
	// Serial is the serial number in decimal, as SPIRE prints it.
	Serial string `json:"serial"`
	// SubjectKeyID is the hex subject key identifier, which SPIRE calls
	// the authority ID of a server's CA.
	SubjectKeyID string    `json:"subject_key_id,omitempty"`
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
}

// certInfo describes c.
func certInfo(c *x509.Certificate) *CertInfo {
	ci := &CertInfo{
		Subject:      c.Subject.String(),
		Serial:       c.SerialNumber.String(),
		SubjectKeyID: hex.EncodeToString(c.SubjectKeyId),
		NotBefore:    c.NotBefore.UTC(),
		NotAfter:     c.NotAfter.UTC(),
	}
	if len(c.URIs) > 0 {
		ci.SPIFFEID = c.URIs[0].String()
	}
	return ci
}

// readSVIDChain reads a helper's svid.pem: the leaf and the CAs between it
// and the trust bundle (edge CA, cloud CA, Vault intermediate), and when
// the file was last written, which is the helper's last rotation.
func readSVIDChain(path string) ([]*x509.Certificate, time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return certs, fi.ModTime().UTC(), nil
}

// attachCAs fills each site server's CA and each cloud server's CA from
// the workloads' SVID chains (leaf, edge CA, cloud CA, ...): SPIRE's CLI
// names a server's active CA only by its authority ID, which is the
// certificate's subject key ID.
func attachCAs(st *Status, chains map[string][]*x509.Certificate) {
	for i := range st.Sites {
		site := &st.Sites[i]
		for _, w := range site.Workloads {
			chain := chains[w.SPIFFEID]
			if len(chain) < 3 {
				continue
			}
			if site.Server.CA == nil || chain[1].NotAfter.After(site.Server.CA.NotAfter) {
				site.Server.CA = certInfo(chain[1])
			}
			cloudCA := certInfo(chain[2])
			for j := range st.Cloud {
				c := &st.Cloud[j]
				if (c.AuthorityID != "" && strings.EqualFold(c.AuthorityID, cloudCA.SubjectKeyID)) || (len(st.Cloud) == 1 && c.CA == nil) {
					c.CA = cloudCA
				}
			}
		}
	}
}

// vaultCAs reads a managed Vault's root and intermediate CA certificates
// from its unauthenticated PKI endpoints (<mount>/ca/pem).
func (r *Runner) vaultCAs(ctx context.Context, h *render.Host, s *render.Service, vs *VaultStatus) {
	caFile, _ := render.VaultTLSFiles(h)
	client, err := httpClient(s.URL, caFile, 3*time.Second)
	if err != nil {
		vs.Error = err.Error()
		return
	}
	defer client.CloseIdleConnections()
	for _, m := range []struct {
		mount string
		dst   **CertInfo
	}{{r.top.Vault.PKIMount, &vs.Root}, {r.top.Vault.PKIIntMount, &vs.Intermediate}} {
		c, err := fetchCA(ctx, client, s.URL+"/v1/"+m.mount+"/ca/pem")
		if err != nil {
			vs.Error = err.Error()
			continue
		}
		*m.dst = certInfo(c)
	}
}

func fetchCA(ctx context.Context, client *http.Client, url string) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	certs, err := pemutil.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return certs[0], nil
}
