package vaultboot

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// RecordEncryptionBlock sets up Vault for the record encryption of the
// Kafka gateways (helper/kafkagw README, "Record encryption"): a Transit
// key ring per ring name, the cert auth method trusting the root of
// pki_root (the root of every SVID), and one cert auth role and one policy
// per identity, bound to its SPIFFE ID. Producers may only make data keys
// of their rings, consumers only unwrap them, key administrators only have
// Vault re-wrap them (`edgeid kafka rewrap`).
type RecordEncryptionBlock struct {
	// TransitMount is the Transit mount (default "transit").
	TransitMount string `hcl:"transit_mount,optional"`
	// CertAuthMount is the cert auth mount (default "cert").
	CertAuthMount string `hcl:"cert_auth_mount,optional"`
	// TokenTTL is the life of a gateway's token (default "15m").
	TokenTTL string `hcl:"token_ttl,optional"`
	// KeyRings are the Transit keys (aes256-gcm96) to create. Key rings
	// are never deleted: records sealed under them would be lost.
	KeyRings []string `hcl:"key_rings,optional"`
	// Identities are the gateways' (and consumers') grants.
	Identities []*RecordIdentityBlock `hcl:"identity,block"`
}

// RecordIdentityBlock is an `identity "<spiffe id>" { }` block: the key
// rings one SPIFFE ID produces to, consumes from, and re-wraps the data
// keys of.
type RecordIdentityBlock struct {
	SPIFFEID string   `hcl:"spiffe_id,label"`
	Produce  []string `hcl:"produce,optional"`
	Consume  []string `hcl:"consume,optional"`
	// Rewrap lets the identity ask Vault to wrap a data key of the ring
	// again with its newest version, without ever seeing the key (an
	// operator running `edgeid kafka rewrap`).
	Rewrap []string `hcl:"rewrap,optional"`
}

// recordCrypt is the validated record_encryption block.
type recordCrypt struct {
	// on is false without the block: only stale grants are removed.
	on           bool
	transitMount string
	certMount    string
	tokenTTL     time.Duration
	rings        []string
	// prefix starts the name of every role and policy the bootstrap
	// writes for this trust domain; others are never touched.
	prefix string
	roles  []recordRole
}

// recordRole is one identity's cert auth role and policy (same name).
type recordRole struct {
	name, id                 string
	produce, consume, rewrap []string
}

// ringName is a Transit key name; roleName what Vault accepts as a cert
// auth role name, lowercase because Vault lowercases policy names (the
// policy has the role's name).
var (
	ringName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	roleName = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_.-]{0,510}[a-z0-9_])?$`)
)

// RecordCryptRolePrefix starts the names of the cert auth roles and
// policies the bootstrap writes for record encryption in a trust domain.
func RecordCryptRolePrefix(trustDomain string) string {
	return withTrustDomain("edgeid-rc", trustDomain) + "."
}

// RecordCryptRoleName is the cert auth role (and policy) of the SPIFFE ID
// id for record encryption: the prefix of its trust domain, then its path
// with '/' made '.', for example
// "edgeid-rc-example-org.edge.site-a.cam-pipeline".
func RecordCryptRoleName(id spiffeid.ID) string {
	return RecordCryptRolePrefix(id.TrustDomain().Name()) + strings.ReplaceAll(strings.TrimPrefix(id.Path(), "/"), "/", ".")
}

// recordEncryption checks the record_encryption block.
func (v *validator) recordEncryption(b *RecordEncryptionBlock) {
	c, p := v.c, v.p
	c.rc = recordCrypt{transitMount: "transit", certMount: "cert", prefix: RecordCryptRolePrefix(c.trustDomain)}
	if b == nil {
		return
	}
	rc := &c.rc
	rc.on = true
	rc.transitMount = strings.Trim(orDefault(b.TransitMount, "transit"), "/")
	rc.certMount = strings.Trim(orDefault(b.CertAuthMount, "cert"), "/")
	rc.tokenTTL = p.duration("record_encryption.token_ttl", b.TokenTTL, "15m", false)
	for key, m := range map[string]string{"record_encryption.transit_mount": rc.transitMount, "record_encryption.cert_auth_mount": rc.certMount} {
		if !mountPattern.MatchString(m) {
			p.add(key, "%q is not a valid mount path", m)
		}
	}
	for _, used := range []string{c.root.path, c.int.path, c.kvMount} {
		if rc.transitMount == used {
			p.add("record_encryption.transit_mount", "%q is already mounted for the PKI or KV", used)
		}
	}
	if c.trustDomain == "" {
		p.add("record_encryption", "needs trust_domain: roles are bound to SPIFFE IDs of one trust domain")
	}
	for i, r := range b.KeyRings {
		if !ringName.MatchString(r) || slices.Contains(rc.rings, r) {
			p.add(fmt.Sprintf("record_encryption.key_rings[%d]", i), "%q is not a Transit key name (1-128 of letters, digits, '.', '_', '-') or is listed twice", r)
			continue
		}
		rc.rings = append(rc.rings, r)
	}
	for i, ib := range b.Identities {
		v.recordIdentity(fmt.Sprintf("record_encryption.identity[%d]", i), ib)
	}
}

// recordIdentity checks one identity block and adds its role.
func (v *validator) recordIdentity(key string, b *RecordIdentityBlock) {
	rc, p := &v.c.rc, v.p
	id, err := spiffeid.FromString(b.SPIFFEID)
	if err != nil {
		p.add(key, "%q is not a SPIFFE ID: %v", b.SPIFFEID, err)
		return
	}
	if td := v.c.trustDomain; td != "" && id.TrustDomain().Name() != td {
		p.add(key, "%q is not in trust domain %q", b.SPIFFEID, td)
		return
	}
	r := recordRole{name: RecordCryptRoleName(id), id: id.String(), produce: b.Produce, consume: b.Consume, rewrap: b.Rewrap}
	if !roleName.MatchString(r.name) {
		p.add(key, "%q gives the role name %q, which Vault does not accept (lowercase letters, digits, '_', '.', '-')", b.SPIFFEID, r.name)
	}
	if len(r.produce)+len(r.consume)+len(r.rewrap) == 0 {
		p.add(key, "%q grants nothing: give it produce, consume or rewrap", b.SPIFFEID)
	}
	for _, prev := range rc.roles {
		if prev.name == r.name {
			p.add(key, "%q has the same role name %q as %q", b.SPIFFEID, r.name, prev.id)
		}
	}
	for what, rings := range map[string][]string{"produce": r.produce, "consume": r.consume, "rewrap": r.rewrap} {
		for j, ring := range rings {
			if !slices.Contains(rc.rings, ring) {
				p.add(fmt.Sprintf("%s.%s[%d]", key, what, j), "%q is not one of key_rings", ring)
			}
		}
	}
	rc.roles = append(rc.roles, r)
}
