package vaultfake

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	if v.tokenSelf(w, path, tok, t, body) {
		return
	}
	if !allowed(t.spec.Caps, path, method) {
		writeErr(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	v.route(w, method, path, body, t)
}

// tokenSelf answers the calls any valid token may make about itself:
// lookup-self, renew-self and capabilities-self. It reports whether path
// was one of them.
func (v *Vault) tokenSelf(w http.ResponseWriter, path, tok string, t *token, body map[string]any) bool {
	switch path {
	case "auth/token/lookup-self":
		ttl := 0
		if !t.expiresAt.IsZero() {
			ttl = int(t.expiresAt.Sub(v.now()) / time.Second)
		}
		writeJSON(w, map[string]any{"data": map[string]any{"ttl": ttl, "renewable": t.spec.Renewable, "policies": []string{"fake"}}})
		return true
	case "auth/token/renew-self":
		if !t.spec.Renewable {
			writeErr(w, http.StatusBadRequest, "lease is not renewable")
			return true
		}
		exp := v.now().Add(t.spec.TTL)
		if t.spec.MaxTTL > 0 && exp.After(t.created.Add(t.spec.MaxTTL)) {
			exp = t.created.Add(t.spec.MaxTTL)
		}
		t.expiresAt = exp
		writeJSON(w, map[string]any{"auth": map[string]any{
			"client_token": tok, "lease_duration": int(exp.Sub(v.now()).Round(time.Second) / time.Second), "renewable": true,
		}})
		return true
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
		return true
	}
	return false
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

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
