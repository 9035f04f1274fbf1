package harness

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeid/edgeid/internal/pemutil"
)

// NodeReaderUser is the Kubernetes user of KubeAPIServer.Kubeconfig. RBAC
// lets it do one thing: get Nodes, which is all the kubeedge Node check
// needs.
const NodeReaderUser = "spire-server-kubeedge"

// Names of the RBAC objects that grant NodeReaderUser its one permission.
const nodeReaderRole = "edgeid-kubeedge-node-reader"

// KubeAPIServer is a real kube-apiserver with its own etcd, both on
// loopback ports chosen at runtime, with data in a per-test directory.
// There is no kubelet: Nodes are API objects only.
type KubeAPIServer struct {
	// URL is the API server's address, https://127.0.0.1:<port>.
	URL string
	// CAPEM is the certificate of the CA that signed the serving
	// certificate (kube-apiserver makes both in its --cert-dir).
	CAPEM []byte
	// Kubeconfig is a kubeconfig file (0600) for NodeReaderUser, whose
	// token allows only `get` on nodes.
	Kubeconfig string
	// AdminKubeconfig is a kubeconfig file (0600) for a system:masters user.
	AdminKubeconfig string
	// Dir holds the data, keys, token file, kubeconfigs and logs.
	Dir string
	// Etcd and APIServer are the two processes.
	Etcd, APIServer *Process

	adminToken, readerToken string
	client                  *http.Client
	// rbac is set once the reader's RBAC objects exist.
	rbac bool
}

// StartKubeAPIServer starts etcd and kube-apiserver (RBAC authorization,
// static tokens, a per-run service-account key), creates the RBAC objects
// that let NodeReaderUser get Nodes, and waits until listing Nodes works
// and the reader's permission is in force. It fails the test with the
// processes' logs when something does not come up.
func StartKubeAPIServer(t testing.TB) *KubeAPIServer {
	t.Helper()
	dir := t.TempDir()
	k := &KubeAPIServer{Dir: dir, adminToken: randomHex(t, 24), readerToken: randomHex(t, 24)}
	etcdURL := k.startEtcd(t)
	saPath, tokensPath := k.writeAuthFiles(t)
	k.startAPIServer(t, etcdURL, saPath, tokensPath)
	k.waitReady(t)

	k.Kubeconfig = k.writeKubeconfig(t, "kubeconfig", NodeReaderUser, k.readerToken)
	k.AdminKubeconfig = k.writeKubeconfig(t, "admin.kubeconfig", "edgeid-admin", k.adminToken)
	k.grantNodeReader(t)
	return k
}

// startEtcd starts a one-member etcd on loopback and returns its URL.
func (k *KubeAPIServer) startEtcd(t testing.TB) string {
	etcdBin := EtcdBin(t)
	clientPort, peerPort := FreePort(t), FreePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	t.Logf("harness: starting real etcd %s (%s)", etcdURL, etcdBin)
	k.Etcd = StartProcess(t, ProcessSpec{
		Name: "etcd",
		Bin:  etcdBin,
		Args: []string{
			"--name=edgeid-test",
			"--data-dir=" + filepath.Join(k.Dir, "etcd"),
			"--listen-client-urls=" + etcdURL,
			"--advertise-client-urls=" + etcdURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=edgeid-test=" + peerURL,
			"--log-level=warn",
			// A test cluster on a shared disk: no fsync per write.
			"--unsafe-no-fsync",
		},
		Dir: k.Dir,
	})
	waitHealthy(t, k.Etcd, "etcd "+etcdURL, 30*time.Second, func() error {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"health":"true"`)) {
			return fmt.Errorf("etcd health: %s %s", resp.Status, body)
		}
		return nil
	})
	return etcdURL
}

// writeAuthFiles writes a per-run service-account key and the static
// tokens of the admin and the Node reader.
func (k *KubeAPIServer) writeAuthFiles(t testing.TB) (saPath, tokensPath string) {
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	saPath = filepath.Join(k.Dir, "service-account.key")
	tokensPath = filepath.Join(k.Dir, "tokens.csv")
	tokens := fmt.Sprintf("%s,edgeid-admin,uid-edgeid-admin,\"system:masters\"\n%s,%s,uid-%s\n", k.adminToken, k.readerToken, NodeReaderUser, NodeReaderUser)
	for path, data := range map[string][]byte{
		saPath:     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}),
		tokensPath: []byte(tokens),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	return saPath, tokensPath
}

// startAPIServer starts kube-apiserver on loopback over etcdURL and waits
// for its serving certificate, whose CA the client then trusts.
func (k *KubeAPIServer) startAPIServer(t testing.TB, etcdURL, saPath, tokensPath string) {
	apiserverBin := KubeAPIServerBin(t)
	apiPort := FreePort(t)
	certDir := filepath.Join(k.Dir, "certs")
	k.URL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	t.Logf("harness: starting real kube-apiserver %s (%s)", k.URL, apiserverBin)
	k.APIServer = StartProcess(t, ProcessSpec{
		Name: "kube-apiserver",
		Bin:  apiserverBin,
		Args: []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", apiPort),
			"--cert-dir=" + certDir,
			"--service-account-key-file=" + saPath,
			"--service-account-signing-key-file=" + saPath,
			"--service-account-issuer=https://kubernetes.default.svc",
			"--token-auth-file=" + tokensPath,
			"--authorization-mode=RBAC",
			"--anonymous-auth=false",
			"--service-cluster-ip-range=10.96.0.0/24",
			"--profiling=false",
		},
		Dir: k.Dir,
	})

	// kube-apiserver writes a self-signed CA and a serving certificate
	// (that CA follows the serving certificate in apiserver.crt).
	waitHealthy(t, k.APIServer, "kube-apiserver serving certificate", 60*time.Second, func() error {
		raw, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
		if err != nil {
			return err
		}
		certs, err := pemutil.ParseCertificates(raw)
		if err != nil {
			return err
		}
		ca := certs[len(certs)-1]
		if len(certs) < 2 || !ca.IsCA {
			return errors.New("apiserver.crt does not end with its CA yet")
		}
		k.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		k.client = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				Proxy:           nil,
				TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool},
			},
		}
		return nil
	})
}

// grantNodeReader gives the reader user get on Nodes (a ClusterRole and
// its binding) and waits until the API server applies it.
func (k *KubeAPIServer) grantNodeReader(t testing.TB) {
	// RBAC: a ClusterRole with get on nodes, bound to the reader user.
	k.mustCreate(t, "/apis/rbac.authorization.k8s.io/v1/clusterroles", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
		"metadata": map[string]any{"name": nodeReaderRole},
		"rules":    []any{map[string]any{"apiGroups": []string{""}, "resources": []string{"nodes"}, "verbs": []string{"get"}}},
	})
	k.mustCreate(t, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": nodeReaderRole},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": nodeReaderRole},
		"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": NodeReaderUser}},
	})
	k.rbac = true
	k.waitReaderAllowed(t)
}

// waitReady waits until the API server lists Nodes for the admin (not
// /readyz, which reports post-start hooks for a while after Nodes work)
// and, once the RBAC objects exist, until the reader may get Nodes.
func (k *KubeAPIServer) waitReady(t testing.TB) {
	t.Helper()
	waitHealthy(t, k.APIServer, "kube-apiserver "+k.URL, 120*time.Second, func() error {
		code, body, err := k.AdminRequest(http.MethodGet, "/api/v1/nodes", nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("list nodes: %d %s", code, body)
		}
		return nil
	})
	if k.rbac {
		k.waitReaderAllowed(t)
	}
}

// waitReaderAllowed waits until the reader gets a 404 (allowed, no such
// Node) instead of a 403: the RBAC authorizer sees bindings through a
// watch, after a start as after a create.
func (k *KubeAPIServer) waitReaderAllowed(t testing.TB) {
	t.Helper()
	waitHealthy(t, k.APIServer, "the node reader's RBAC binding", 60*time.Second, func() error {
		code, body, err := k.ReaderRequest(http.MethodGet, "/api/v1/nodes/edgeid-rbac-probe", nil)
		if err != nil {
			return err
		}
		if code != http.StatusNotFound {
			return fmt.Errorf("reader GET node: %d %s", code, body)
		}
		return nil
	})
}

func (k *KubeAPIServer) writeKubeconfig(t testing.TB, name, user, token string) string {
	t.Helper()
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: edgeid
clusters:
- name: edgeid-test
  cluster:
    server: %s
    certificate-authority-data: %s
contexts:
- name: edgeid
  context:
    cluster: edgeid-test
    user: %s
users:
- name: %s
  user:
    token: %s
`, k.URL, base64.StdEncoding.EncodeToString(k.CAPEM), user, user, token)
	path := filepath.Join(k.Dir, name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return path
}

// AdminRequest sends one request as a system:masters user and returns the
// status code and (at most 4 MiB of) the body.
func (k *KubeAPIServer) AdminRequest(method, path string, body []byte) (int, []byte, error) {
	return k.request(k.adminToken, method, path, body)
}

// ReaderRequest sends one request as NodeReaderUser.
func (k *KubeAPIServer) ReaderRequest(method, path string, body []byte) (int, []byte, error) {
	return k.request(k.readerToken, method, path, body)
}

func (k *KubeAPIServer) request(token, method, path string, body []byte) (int, []byte, error) {
	u, err := url.JoinPath(k.URL, path)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, out, err
}

func (k *KubeAPIServer) mustCreate(t testing.TB, path string, obj any) []byte {
	t.Helper()
	body, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	code, out, err := k.AdminRequest(http.MethodPost, path, body)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("harness: kube-apiserver POST %s: %d %s %v", path, code, out, err)
	}
	return out
}

// CreateNode creates a Node object with labels and returns its UID.
func (k *KubeAPIServer) CreateNode(t testing.TB, name string, labels map[string]string) string {
	t.Helper()
	out := k.mustCreate(t, "/api/v1/nodes", map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": name, "labels": labels},
	})
	var n struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(out, &n); err != nil || n.Metadata.UID == "" {
		t.Fatalf("harness: created node %s has no uid: %s %v", name, out, err)
	}
	t.Logf("harness: kube-apiserver: created node %s (uid %s, labels %v)", name, n.Metadata.UID, labels)
	return n.Metadata.UID
}

// DeleteNode deletes a Node and waits until the API server answers 404 for
// it (a Node without finalizers goes at once).
func (k *KubeAPIServer) DeleteNode(t testing.TB, name string) {
	t.Helper()
	code, out, err := k.AdminRequest(http.MethodDelete, "/api/v1/nodes/"+name, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("harness: kube-apiserver DELETE node %s: %d %s %v", name, code, out, err)
	}
	Eventually(t, 30*time.Second, func() error {
		code, _, err := k.AdminRequest(http.MethodGet, "/api/v1/nodes/"+name, nil)
		if err != nil {
			return err
		}
		if code != http.StatusNotFound {
			return fmt.Errorf("node %s still answers %d", name, code)
		}
		return nil
	})
	t.Logf("harness: kube-apiserver: deleted node %s", name)
}

// Stop stops kube-apiserver (etcd keeps running): an API server outage.
func (k *KubeAPIServer) Stop(t testing.TB) {
	t.Helper()
	t.Logf("harness: stopping kube-apiserver %s", k.URL)
	k.APIServer.Stop()
}

// Start starts kube-apiserver again after Stop, on the same port and
// certificates, and waits until it lists Nodes.
func (k *KubeAPIServer) Start(t testing.TB) {
	t.Helper()
	t.Logf("harness: restarting kube-apiserver %s", k.URL)
	k.APIServer.Restart(t)
	k.waitReady(t)
}
