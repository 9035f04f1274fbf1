package vaultfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Caps maps a Vault path (or a prefix ending in "*") to capabilities.
type Caps map[string][]string

// TokenSpec describes the tokens a login hands out.
type TokenSpec struct {
	Caps      Caps
	TTL       time.Duration // 0: never expires
	Renewable bool
	// MaxTTL caps renewals, counted from creation; 0 for no cap.
	MaxTTL time.Duration
}

type token struct {
	spec      TokenSpec
	created   time.Time
	expiresAt time.Time // zero: never
	revoked   bool
}

// CA is a CA certificate with its key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Issuer is one issuer of a PKI mount.
type Issuer struct {
	ID    string
	Name  string
	CA    CA
	Chain []*x509.Certificate // the issuer's CA chain, itself first
}

type mount struct {
	issuers   []*Issuer
	defaultID string
	maxTTL    time.Duration
}

type kvSecret struct {
	version int
	data    map[string]any
}

// Vault is the fake server.
type Vault struct {
	t      testing.TB
	server *httptest.Server

	mu       sync.Mutex
	tokens   map[string]*token
	approles map[string]approle   // mount -> credentials
	certRole map[string]certRole  // mount -> role
	k8sRole  map[string]k8sRole   // mount -> role
	pki      map[string]*mount    // mount -> PKI
	kv       map[string]*kvSecret // full data path -> secret
	requests map[string]int       // "METHOD path" -> count
	sealed   bool
	failNext map[string]int             // path -> how many requests to fail with 500
	hook     func(r *http.Request) bool // returns true when it handled the request
	now      func() time.Time
	seq      int
}

type approle struct {
	roleID, secretID string
	spec             TokenSpec
}

type certRole struct {
	name        string
	fingerprint string // sha256 hex of the accepted client certificate
	spec        TokenSpec
}

type k8sRole struct {
	role, jwt string
	spec      TokenSpec
}

// New starts a fake Vault over plain HTTP on loopback.
func New(t testing.TB) *Vault {
	v := newVault(t)
	v.server = httptest.NewServer(v)
	t.Cleanup(v.server.Close)
	return v
}

// NewTLS starts a fake Vault over TLS that asks for (but does not require)
// a client certificate, for cert auth. CACertPEM returns its CA.
func NewTLS(t testing.TB) *Vault {
	v := newVault(t)
	v.server = httptest.NewUnstartedServer(v)
	v.server.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	v.server.StartTLS()
	t.Cleanup(v.server.Close)
	return v
}

func newVault(t testing.TB) *Vault {
	return &Vault{
		t:        t,
		tokens:   map[string]*token{},
		approles: map[string]approle{},
		certRole: map[string]certRole{},
		k8sRole:  map[string]k8sRole{},
		pki:      map[string]*mount{},
		kv:       map[string]*kvSecret{},
		requests: map[string]int{},
		failNext: map[string]int{},
		now:      time.Now,
	}
}

// Addr is the fake's base URL.
func (v *Vault) Addr() string { return v.server.URL }

// CACertPEM is the PEM of the TLS server's certificate (NewTLS only).
func (v *Vault) CACertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: v.server.Certificate().Raw})
}

// Close stops the server: later requests fail to connect.
func (v *Vault) Close() { v.server.Close() }

// SetSealed seals or unseals the fake: sealed, every request gets a 503.
func (v *Vault) SetSealed(sealed bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sealed = sealed
}

// FailNext makes the next n requests to path (no leading /v1/) fail with 500.
func (v *Vault) FailNext(path string, n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.failNext[path] = n
}

// SetNow replaces the fake's clock.
func (v *Vault) SetNow(now func() time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.now = now
}

// Requests returns how many requests "METHOD path" (path without /v1/)
// received.
func (v *Vault) Requests(methodPath string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.requests[methodPath]
}

// AddToken registers a token with spec and returns it.
func (v *Vault) AddToken(spec TokenSpec) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.newTokenLocked(spec)
}

// RevokeToken makes token invalid.
func (v *Vault) RevokeToken(tok string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if t, ok := v.tokens[tok]; ok {
		t.revoked = true
	}
}

// RevokeAllTokens makes every token issued so far invalid.
func (v *Vault) RevokeAllTokens() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, t := range v.tokens {
		t.revoked = true
	}
}

// EnableAppRole accepts roleID/secretID at auth/<mount>/login.
func (v *Vault) EnableAppRole(mount, roleID, secretID string, spec TokenSpec) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.approles[mount] = approle{roleID: roleID, secretID: secretID, spec: spec}
}

// EnableCertAuth accepts the client certificate cert at auth/<mount>/login
// under role name (empty accepts any name).
func (v *Vault) EnableCertAuth(mount, name string, cert *x509.Certificate, spec TokenSpec) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sum := sha256.Sum256(cert.Raw)
	v.certRole[mount] = certRole{name: name, fingerprint: hex.EncodeToString(sum[:]), spec: spec}
}

// EnableK8sAuth accepts jwt for role at auth/<mount>/login.
func (v *Vault) EnableK8sAuth(mount, role, jwt string, spec TokenSpec) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.k8sRole[mount] = k8sRole{role: role, jwt: jwt, spec: spec}
}

func (v *Vault) newTokenLocked(spec TokenSpec) string {
	v.seq++
	tok := fmt.Sprintf("hvs.fake-%d-%s", v.seq, randHex(8))
	now := v.now()
	t := &token{spec: spec, created: now}
	if spec.TTL > 0 {
		t.expiresAt = now.Add(spec.TTL)
	}
	v.tokens[tok] = t
	return tok
}

// ServeHTTP implements http.Handler.
func (v *Vault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	method := r.Method
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" {
		method = "LIST"
	}
	if method == http.MethodPost {
		method = http.MethodPut
	}
	var body map[string]any
	if r.Body != nil && (method == http.MethodPut) {
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		_ = dec.Decode(&body)
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	v.requests[method+" "+path]++
	if v.sealed {
		writeErr(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	if n := v.failNext[path]; n > 0 {
		v.failNext[path] = n - 1
		writeErr(w, http.StatusInternalServerError, "injected failure")
		return
	}

	if strings.HasPrefix(path, "auth/") && strings.HasSuffix(path, "/login") {
		v.login(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "auth/"), "/login"), body)
		return
	}
	if v.unauthenticated(method, path) {
		v.route(w, method, path, body, nil)
		return
	}
	tok := r.Header.Get("X-Vault-Token")
	t := v.tokens[tok]
	if t == nil || t.revoked || (!t.expiresAt.IsZero() && !v.now().Before(t.expiresAt)) {
		writeErr(w, http.StatusForbidden, "permission denied")
		return
	}
	switch path {
	case "auth/token/lookup-self":
		ttl := 0
		if !t.expiresAt.IsZero() {
			ttl = int(t.expiresAt.Sub(v.now()) / time.Second)
		}
		writeJSON(w, map[string]any{"data": map[string]any{"ttl": ttl, "renewable": t.spec.Renewable, "policies": []string{"fake"}}})
		return
	case "auth/token/renew-self":
		if !t.spec.Renewable {
			writeErr(w, http.StatusBadRequest, "lease is not renewable")
			return
		}
		exp := v.now().Add(t.spec.TTL)
		if t.spec.MaxTTL > 0 && exp.After(t.created.Add(t.spec.MaxTTL)) {
			exp = t.created.Add(t.spec.MaxTTL)
		}
		t.expiresAt = exp
		writeJSON(w, map[string]any{"auth": map[string]any{
			"client_token": tok, "lease_duration": int(exp.Sub(v.now()).Round(time.Second) / time.Second), "renewable": true,
		}})
		return
	case "sys/capabilities-self":
		var paths []string
		if p, ok := body["path"].(string); ok {
			paths = append(paths, p)
		}
		if ps, ok := body["paths"].([]any); ok {
			for _, p := range ps {
				if s, ok := p.(string); ok {
					paths = append(paths, s)
				}
			}
		}
		data := map[string]any{}
		for _, p := range paths {
			caps := capsFor(t.spec.Caps, p)
			data[p] = caps
			data["capabilities"] = caps
		}
		writeJSON(w, map[string]any{"data": data})
		return
	}
	if !allowed(t.spec.Caps, path, method) {
		writeErr(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	v.route(w, method, path, body, t)
}

func (v *Vault) unauthenticated(method, path string) bool {
	parts := strings.Split(path, "/")
	if len(parts) < 2 {
		return false
	}
	if _, ok := v.pki[parts[0]]; !ok {
		return false
	}
	switch {
	case method == "LIST" && len(parts) == 2 && parts[1] == "issuers":
		return true
	case method == http.MethodGet && len(parts) == 4 && parts[1] == "issuer" && parts[3] == "json":
		return true
	}
	return false
}

func (v *Vault) login(w http.ResponseWriter, r *http.Request, mount string, body map[string]any) {
	str := func(k string) string { s, _ := body[k].(string); return s }
	var spec TokenSpec
	a, isAppRole := v.approles[mount]
	c, isCert := v.certRole[mount]
	k, isK8s := v.k8sRole[mount]
	switch {
	case isAppRole:
		if str("role_id") != a.roleID || str("secret_id") != a.secretID {
			writeErr(w, http.StatusBadRequest, "invalid role or secret ID")
			return
		}
		spec = a.spec
	case isCert:
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			writeErr(w, http.StatusBadRequest, "client certificate must be supplied")
			return
		}
		sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		if hex.EncodeToString(sum[:]) != c.fingerprint || (c.name != "" && str("name") != "" && str("name") != c.name) {
			writeErr(w, http.StatusBadRequest, "invalid certificate or no client certificate supplied")
			return
		}
		spec = c.spec
	case isK8s:
		if str("role") != k.role || str("jwt") != k.jwt {
			writeErr(w, http.StatusForbidden, "permission denied")
			return
		}
		spec = k.spec
	default:
		writeErr(w, http.StatusNotFound, "no handler for route")
		return
	}
	tok := v.newTokenLocked(spec)
	writeJSON(w, map[string]any{"auth": map[string]any{
		"client_token":   tok,
		"lease_duration": int(spec.TTL / time.Second),
		"renewable":      spec.Renewable,
		"policies":       []string{"fake"},
	}})
}

func (v *Vault) route(w http.ResponseWriter, method, path string, body map[string]any, _ *token) {
	parts := strings.Split(path, "/")
	if m, ok := v.pki[parts[0]]; ok {
		v.routePKI(w, m, method, parts[1:], body)
		return
	}
	if len(parts) > 2 && parts[1] == "data" {
		v.routeKV(w, method, path, body)
		return
	}
	writeErr(w, http.StatusNotFound, "no handler for route "+path)
}

func (v *Vault) routePKI(w http.ResponseWriter, m *mount, method string, rest []string, body map[string]any) {
	switch {
	case method == "LIST" && len(rest) == 1 && rest[0] == "issuers":
		keys := make([]string, 0, len(m.issuers))
		for _, is := range m.issuers {
			keys = append(keys, is.ID)
		}
		writeJSON(w, map[string]any{"data": map[string]any{"keys": keys}})
	case method == http.MethodGet && len(rest) == 3 && rest[0] == "issuer" && rest[2] == "json":
		is := m.issuer(rest[1])
		if is == nil {
			writeErr(w, http.StatusNotFound, "unable to find issuer")
			return
		}
		chain := make([]string, 0, len(is.Chain))
		for _, c := range is.Chain {
			chain = append(chain, pemString(c))
		}
		writeJSON(w, map[string]any{"data": map[string]any{
			"issuer_id": is.ID, "issuer_name": is.Name, "certificate": pemString(is.CA.Cert), "ca_chain": chain,
		}})
	case method == http.MethodPut && len(rest) == 2 && rest[0] == "root" && rest[1] == "sign-intermediate":
		v.signIntermediate(w, m, body)
	default:
		writeErr(w, http.StatusNotFound, "no handler for route")
	}
}

func (m *mount) issuer(ref string) *Issuer {
	if ref == "default" {
		ref = m.defaultID
	}
	for _, is := range m.issuers {
		if is.ID == ref || is.Name == ref {
			return is
		}
	}
	return nil
}

func (v *Vault) signIntermediate(w http.ResponseWriter, m *mount, body map[string]any) {
	ref, _ := body["issuer_ref"].(string)
	if ref == "" {
		ref = "default"
	}
	is := m.issuer(ref)
	if is == nil {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("unable to find PKI issuer for reference: %s", ref))
		return
	}
	csrPEM, _ := body["csr"].(string)
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil {
		writeErr(w, http.StatusBadRequest, "csr contains no data")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "certificate request could not be parsed: "+err.Error())
		return
	}
	ttl := m.maxTTL
	if s, _ := body["ttl"].(string); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "invalid ttl")
			return
		}
		ttl = min(d, m.maxTTL)
	}
	now := v.now()
	notAfter := now.Add(ttl)
	if notAfter.After(is.CA.Cert.NotAfter) {
		notAfter = is.CA.Cert.NotAfter // leaf_not_after_behavior=truncate
	}
	var uris []*url.URL
	if s, _ := body["uri_sans"].(string); s != "" {
		for _, u := range strings.Split(s, ",") {
			parsed, err := url.Parse(u)
			if err != nil {
				writeErr(w, http.StatusBadRequest, "invalid uri_sans")
				return
			}
			uris = append(uris, parsed)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               csr.Subject,
		URIs:                  uris,
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.CA.Cert, csr.PublicKey, is.CA.Key)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	cert, _ := x509.ParseCertificate(der)
	chain := []string{}
	for _, c := range is.Chain {
		chain = append(chain, pemString(c))
	}
	writeJSON(w, map[string]any{"data": map[string]any{
		"certificate":   pemString(cert),
		"issuing_ca":    pemString(is.CA.Cert),
		"ca_chain":      chain,
		"serial_number": cert.SerialNumber.String(),
	}})
}

func (v *Vault) routeKV(w http.ResponseWriter, method, path string, body map[string]any) {
	sec := v.kv[path]
	switch method {
	case http.MethodGet:
		if sec == nil {
			writeErr(w, http.StatusNotFound, "")
			return
		}
		writeJSON(w, map[string]any{"data": map[string]any{
			"data":     sec.data,
			"metadata": map[string]any{"version": sec.version},
		}})
	case http.MethodPut:
		current := 0
		if sec != nil {
			current = sec.version
		}
		if opts, ok := body["options"].(map[string]any); ok {
			if cas, ok := opts["cas"].(json.Number); ok {
				n, _ := cas.Int64()
				if int(n) != current {
					writeErr(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
					return
				}
			}
		}
		data, _ := body["data"].(map[string]any)
		// Round-trip so stored data looks like what a reader decodes.
		raw, _ := json.Marshal(data)
		var stored map[string]any
		_ = json.Unmarshal(raw, &stored)
		v.kv[path] = &kvSecret{version: current + 1, data: stored}
		writeJSON(w, map[string]any{"data": map[string]any{"version": current + 1}})
	default:
		writeErr(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

// KVData returns the stored data of a KV v2 data path, or nil.
func (v *Vault) KVData(path string) map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.kv[path]; s != nil {
		return s.data
	}
	return nil
}

// PutKV writes data at a KV v2 data path, bumping its version.
func (v *Vault) PutKV(path string, data map[string]any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	version := 1
	if s := v.kv[path]; s != nil {
		version = s.version + 1
	}
	raw, _ := json.Marshal(data)
	var stored map[string]any
	_ = json.Unmarshal(raw, &stored)
	v.kv[path] = &kvSecret{version: version, data: stored}
}

// capsFor returns the capabilities granted on path, "deny" when none.
func capsFor(caps Caps, path string) []string {
	if c, ok := caps[path]; ok {
		return c
	}
	best := ""
	for p := range caps {
		if strings.HasSuffix(p, "*") && strings.HasPrefix(path, strings.TrimSuffix(p, "*")) && len(p) > len(best) {
			best = p
		}
	}
	if best != "" {
		return caps[best]
	}
	if c, ok := caps["*"]; ok {
		return c
	}
	return []string{"deny"}
}

func allowed(caps Caps, path, method string) bool {
	need := map[string]string{"GET": "read", "LIST": "list", "PUT": "update", "DELETE": "delete"}[method]
	for _, c := range capsFor(caps, path) {
		if c == need || c == "root" || (method == "PUT" && c == "create") {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	errs := []string{}
	if msg != "" {
		errs = append(errs, msg)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs})
}

func pemString(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewRootCA makes a self-signed root CA valid for ttl.
func NewRootCA(t testing.TB, cn string, ttl time.Duration) CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return CA{Cert: cert, Key: key}
}

// NewIntermediateCA makes a CA signed by parent, valid for ttl. A nil key
// generates one.
func NewIntermediateCA(t testing.TB, cn string, parent CA, key *ecdsa.PrivateKey, ttl time.Duration) CA {
	t.Helper()
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.Cert, &key.PublicKey, parent.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return CA{Cert: cert, Key: key}
}

// AddPKIMount creates (or replaces) a PKI mount whose sign-intermediate caps
// TTLs at maxTTL.
func (v *Vault) AddPKIMount(name string, maxTTL time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pki[name] = &mount{maxTTL: maxTTL}
}

// AddIssuer adds an issuer to mount with its CA chain (ca first, up to and
// including the root). The first issuer added becomes the default. It
// returns the issuer ID.
func (v *Vault) AddIssuer(mount, name string, ca CA, chain ...*x509.Certificate) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.pki[mount]
	if m == nil {
		v.t.Fatalf("vaultfake: no PKI mount %q", mount)
	}
	v.seq++
	id := fmt.Sprintf("%08x-0000-4000-8000-%012d", v.seq, v.seq)
	is := &Issuer{ID: id, Name: name, CA: ca, Chain: append([]*x509.Certificate{ca.Cert}, chain...)}
	m.issuers = append(m.issuers, is)
	if m.defaultID == "" {
		m.defaultID = id
	}
	return id
}

// SetDefaultIssuer makes ref the mount's default issuer.
func (v *Vault) SetDefaultIssuer(mount, ref string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.pki[mount]
	if is := m.issuer(ref); is != nil {
		m.defaultID = is.ID
	}
}

// SetMaxTTL changes the mount's TTL cap.
func (v *Vault) SetMaxTTL(mount string, maxTTL time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pki[mount].maxTTL = maxTTL
}

// RemoveIssuer deletes an issuer from mount.
func (v *Vault) RemoveIssuer(mount, ref string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.pki[mount]
	is := m.issuer(ref)
	if is == nil {
		return
	}
	out := m.issuers[:0]
	for _, x := range m.issuers {
		if x != is {
			out = append(out, x)
		}
	}
	m.issuers = out
}
