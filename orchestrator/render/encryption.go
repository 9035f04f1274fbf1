package render

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/edgeid/edgeid/bootstrap/vaultboot"
	"github.com/edgeid/edgeid/orchestrator/topology"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// encryptData fills the encrypt block of a helper's kafka_gateway
// (helper/README.md): record encryption of the encrypted topics its
// pipeline publishes to or subscribes to.
type encryptData struct {
	Topics                    []string
	KeyRing                   string // empty: KeyRings, else each topic is its own ring
	KeyRings                  []topology.EncryptedTopic
	VaultAddress, VaultCAFile string
	CertAuthMount, CertRole   string
	TransitMount              string
	Undecryptable, Plaintext  string
	QuarantineDir             string
}

// recordGrant is what one identity may do with the key rings: the
// bootstrap gives it a cert auth role and a policy from this.
type recordGrant struct {
	id                       string
	produce, consume, rewrap []string
}

// edgeEncrypt returns the encrypt block of the helper of client c (its
// service svc on h, its directory dir, its account acct), or nil when c
// touches no encrypted topic. It records c's grant for the bootstrap.
func (b *builder) edgeEncrypt(h *Host, svc *Service, c kafkaClient, dir string, acct Account) (*encryptData, error) {
	enc := b.top.Kafka.Encryption
	if enc == nil {
		return nil, nil
	}
	var entries []topology.EncryptedTopic
	g := recordGrant{id: c.id}
	for _, side := range []struct {
		topics []string
		rings  *[]string
	}{{c.publish, &g.produce}, {c.subscribe, &g.consume}} {
		for _, topic := range side.topics {
			if e, ok := enc.Match(topic); ok {
				entries = appendNew(entries, e)
				*side.rings = appendNew(*side.rings, e.Ring)
			}
		}
	}
	if len(entries) == 0 {
		return nil, nil
	}
	topics, ring, rings := helperTopics(entries)
	addr, ca, err := b.gatewayVault(h, svc)
	if err != nil {
		return nil, err
	}
	d := &encryptData{Topics: topics, KeyRing: ring, KeyRings: rings, VaultAddress: addr, VaultCAFile: ca,
		CertAuthMount: enc.CertAuthMount, TransitMount: enc.TransitMount,
		CertRole:      vaultboot.RecordCryptRoleName(spiffeid.RequireFromString(c.id)),
		Undecryptable: enc.Undecryptable, Plaintext: enc.Plaintext}
	if enc.Undecryptable == "quarantine" || enc.Plaintext == "quarantine" {
		d.QuarantineDir = filepath.Join(dir, "quarantine")
		h.addDir(d.QuarantineDir, 0o700, acct)
	}
	b.grants = append(b.grants, g)
	return d, nil
}

// helperTopics turns the topology's entries a gateway needs into the
// helper's topics, key_ring and key_rings: one key_ring when they all
// share a ring, nothing when each is a topic name that is its own ring,
// else a key_rings entry for each entry that is not its own ring (the
// topology's entries never overlap, so each topic gets one ring).
func helperTopics(entries []topology.EncryptedTopic) (topics []string, ring string, rings []topology.EncryptedTopic) {
	var all []string
	for _, e := range entries {
		topics = append(topics, e.Pattern)
		all = appendNew(all, e.Ring)
		if e.Prefix() || e.Ring != e.Pattern {
			rings = append(rings, e)
		}
	}
	if len(all) == 1 {
		return topics, all[0], nil
	}
	return topics, "", rings
}

// gatewayVault is the Vault address and CA file an edge gateway of service
// svc on h logs in to: the managed Vault over its TLS (its certificate is
// copied to h before the first start), or vault.address and vault.ca_cert.
func (b *builder) gatewayVault(h *Host, svc *Service) (addr, ca string, err error) {
	v := b.top.Vault
	if !v.Managed {
		return v.Address, v.CACert, nil
	}
	if b.env.Embedded {
		return "", "", fmt.Errorf("render: kafka.encryption: the embedded run's Vault serves plain HTTP on loopback, and the edge gateways log in to Vault with their SVIDs over TLS only; render for real hosts (edgeid render), or leave kafka.encryption out of an embedded run")
	}
	vh := b.host(v.Host)
	_, vs := b.plan.Service(Ref(vh.Name, "vault"))
	if vs == nil {
		return "", "", fmt.Errorf("render: kafka.encryption: no managed Vault on host %s", vh.Name)
	}
	ca, _ = VaultTLSFiles(vh)
	if h.Name != vh.Name {
		svc.Needs = appendNew(svc.Needs, ca)
		svc.NeedsFrom = vh.Name
	}
	return vs.URL, ca, nil
}

// workloadDNSName is the DNS name of a workload's SVID that logs in to
// Vault: SPIRE copies the first DNS name into the subject CN, without
// which Vault's cert auth refuses the certificate. The workload path's
// segments, reversed, then the site and the trust domain, for example
// "cam-pipeline.deepstream.site-a.example.org" (authorization rests on
// the URI SAN; the name is only for the CN).
func workloadDNSName(td, site, workload string) string {
	labels := strings.Split(workload, "/")
	slices.Reverse(labels)
	labels = append(labels, site)
	for _, l := range strings.Split(td, ".") {
		labels = append(labels, strings.ReplaceAll(l, "_", "-"))
	}
	return strings.Join(labels, ".")
}

// appendNew appends v unless s holds it.
func appendNew[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// recordEncryptionData fills the bootstrap's record_encryption block.
type recordEncryptionData struct {
	TransitMount, CertAuthMount string
	TokenTTL                    string
	KeyRings                    []string
	Grants                      []recordGrant
}

// ID, Produce, Consume and Rewrap are for the template.
func (g recordGrant) ID() string        { return g.id }
func (g recordGrant) Produce() []string { return g.produce }
func (g recordGrant) Consume() []string { return g.consume }
func (g recordGrant) Rewrap() []string  { return g.rewrap }

// recordEncryption is the bootstrap's record_encryption block: every
// ring of the topology, the pipelines' grants, the consumers' (decrypt on
// every ring) and the rewrappers' (rewrap on every ring). Nil when
// encryption is off.
func (b *builder) recordEncryption() *recordEncryptionData {
	enc := b.top.Kafka.Encryption
	if enc == nil {
		return nil
	}
	d := &recordEncryptionData{TransitMount: enc.TransitMount, CertAuthMount: enc.CertAuthMount,
		TokenTTL: enc.TokenTTL.String(), KeyRings: enc.Rings(), Grants: slices.Clone(b.grants)}
	grant := func(id string) *recordGrant {
		i := slices.IndexFunc(d.Grants, func(g recordGrant) bool { return g.id == id })
		if i < 0 {
			d.Grants = append(d.Grants, recordGrant{id: id})
			i = len(d.Grants) - 1
		}
		return &d.Grants[i]
	}
	for _, id := range enc.Consumers {
		g := grant(id)
		for _, r := range d.KeyRings {
			g.consume = appendNew(g.consume, r)
		}
	}
	for _, id := range enc.Rewrappers {
		g := grant(id)
		for _, r := range d.KeyRings {
			g.rewrap = appendNew(g.rewrap, r)
		}
	}
	return d
}
