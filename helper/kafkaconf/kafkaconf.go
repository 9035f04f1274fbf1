package kafkaconf

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// MaxProtoCfg is DeepStream's limit on the length of proto-cfg.
const MaxProtoCfg = 1024

// DefaultCipherSuites is the OpenSSL cipher list for TLS 1.2: ECDHE key
// exchange with AES-GCM only. TLS 1.3 suites are all AEAD and stay enabled.
const DefaultCipherSuites = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

// DefaultJavaCipherSuites is the same policy in Java's names, TLS 1.3 first.
const DefaultJavaCipherSuites = "TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256," +
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384," +
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"

// Paths are the absolute paths of the files the configs refer to.
type Paths struct {
	CA          string
	Cert        string
	Key         string
	CombinedPEM string
	Keystore    string
	Truststore  string
}

// Property is one key=value line. In Settings.Extra an empty Value removes
// the rendered property of that key.
type Property struct {
	Key, Value string
}

// Settings are the choices shared by all renderers.
type Settings struct {
	BootstrapServers string
	// EndpointIdentificationAlgorithm is "https" or "none".
	EndpointIdentificationAlgorithm string
	// CipherSuites is the OpenSSL list for librdkafka and DeepStream;
	// empty means DefaultCipherSuites.
	CipherSuites string
	// Extra properties override or extend the rendered ones, in order.
	Extra []Property
	// Plaintext renders a client of a local edge-mode Kafka gateway
	// (edgeid-helper's kafka_gateway block): security.protocol=plaintext
	// to BootstrapServers on loopback and no TLS keys, because the gateway
	// speaks mTLS upstream with the current SVID. Such a client never needs
	// a restart on rotation.
	Plaintext bool
	// SealingGateway: that local gateway encrypts records (its encrypt
	// block), which makes every record up to SealedRecordOverhead bytes
	// longer on its way to the broker. librdkafka's batches are capped
	// (SealedBatchBytes, SealedBatchRecords) so that a sealed batch stays
	// under Kafka's default message.max.bytes; Extra can still override.
	SealingGateway bool
}

// Batch limits for a client of a sealing gateway. librdkafka's defaults
// (batch.size 1,000,000 bytes, up to 10,000 records) make batches that,
// sealed, pass the 1,048,588 bytes a Kafka broker accepts by default, and
// the broker answers MESSAGE_TOO_LARGE. With these a sealed batch is at
// most 600,000 + 1,500 × 256 = 984,000 bytes.
const (
	SealedBatchBytes   = 600000
	SealedBatchRecords = 1500
	// SealedRecordOverhead bounds what sealing adds to one record whose
	// value (and key) are encrypted: nonce and tag per field (28 bytes
	// each), the edgeid-enc header with a Vault-wrapped data key (about
	// 110 bytes plus the key ring's name, up to 64 characters here) and
	// the record's own length fields. Each encrypted header adds 28 more.
	SealedRecordOverhead = 256
)

// TemplateData is what a user template sees.
type TemplateData struct {
	Paths
	Settings
	// Properties are the built-in renderer's properties after Extra.
	Properties []Property
	// Password is the PKCS#12 store password (Java only).
	Password string
	// SPIFFEID is the published SVID's ID.
	SPIFFEID string
}

// LibrdkafkaProperties returns the librdkafka properties for p and s.
func LibrdkafkaProperties(p Paths, s Settings) []Property {
	props := []Property{}
	if s.BootstrapServers != "" {
		props = append(props, Property{"bootstrap.servers", s.BootstrapServers})
	}
	if s.Plaintext {
		props = append(props, Property{"security.protocol", "plaintext"})
		if s.SealingGateway {
			props = append(props, Property{"batch.size", strconv.Itoa(SealedBatchBytes)},
				Property{"batch.num.messages", strconv.Itoa(SealedBatchRecords)})
		}
		return apply(props, s.Extra)
	}
	props = append(props,
		Property{"security.protocol", "ssl"},
		Property{"ssl.ca.location", p.CA},
		Property{"ssl.certificate.location", p.Cert},
		Property{"ssl.key.location", p.Key},
		Property{"ssl.endpoint.identification.algorithm", algorithm(s)},
		Property{"ssl.cipher.suites", ciphers(s)},
	)
	return apply(props, s.Extra)
}

// Librdkafka renders a librdkafka properties file (kcat -F format).
func Librdkafka(p Paths, s Settings) ([]byte, error) {
	props := LibrdkafkaProperties(p, s)
	var b bytes.Buffer
	if s.Plaintext {
		b.WriteString("# Rendered by edgeid-helper. The client speaks plaintext to the helper's local\n")
		b.WriteString("# Kafka gateway, which holds the current SVID: no restart on rotation.\n")
	} else {
		b.WriteString("# Rendered by edgeid-helper on every SVID rotation. librdkafka reads these\n")
		b.WriteString("# files once per client: restart the client after a rotation.\n")
	}
	for _, pr := range props {
		if err := checkLine(pr); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s=%s\n", pr.Key, pr.Value)
	}
	return b.Bytes(), nil
}

// DeepStream renders cfg_kafka.txt for DeepStream's Kafka protocol adaptor.
// The proto-cfg value carries the librdkafka TLS settings as file paths and
// must stay under MaxProtoCfg characters.
func DeepStream(p Paths, s Settings, partitionKey string) ([]byte, error) {
	cfg, err := ProtoCfg(p, s)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Rendered by edgeid-helper on every SVID rotation.\n")
	b.WriteString("[message-broker]\n")
	fmt.Fprintf(&b, "proto-cfg = \"%s\"\n", cfg)
	if partitionKey != "" {
		if strings.ContainsAny(partitionKey, "\"\n") {
			return nil, fmt.Errorf("kafkaconf: partition key %q contains a quote or newline", partitionKey)
		}
		fmt.Fprintf(&b, "partition-key = %s\n", partitionKey)
	}
	return b.Bytes(), nil
}

// ProtoCfg returns DeepStream's proto-cfg value: "key=value;key=value".
// bootstrap.servers is left out: DeepStream takes the broker from its
// conn-str.
func ProtoCfg(p Paths, s Settings) (string, error) {
	s.BootstrapServers = ""
	parts := make([]string, 0, 8)
	for _, pr := range LibrdkafkaProperties(p, s) {
		if strings.ContainsAny(pr.Key+pr.Value, ";\"\n") {
			return "", fmt.Errorf("kafkaconf: proto-cfg property %q contains ';', '\"' or a newline", pr.Key)
		}
		parts = append(parts, pr.Key+"="+pr.Value)
	}
	cfg := strings.Join(parts, ";")
	if len(cfg) >= MaxProtoCfg {
		return "", fmt.Errorf("kafkaconf: proto-cfg is %d characters, DeepStream accepts fewer than %d; use shorter paths (cert_dir) or fewer properties", len(cfg), MaxProtoCfg)
	}
	return cfg, nil
}

// JavaProperties returns the Java client properties. storeType is "PEM"
// (key and chain from the combined PEM, trust from the bundle PEM) or
// "PKCS12" (keystore and truststore files with password).
func JavaProperties(p Paths, s Settings, storeType, password string) ([]Property, error) {
	props := []Property{}
	if s.BootstrapServers != "" {
		props = append(props, Property{"bootstrap.servers", s.BootstrapServers})
	}
	if s.Plaintext {
		props = append(props, Property{"security.protocol", "PLAINTEXT"})
		return apply(props, s.Extra), nil
	}
	props = append(props, Property{"security.protocol", "SSL"})
	switch storeType {
	case "PEM":
		if p.CombinedPEM == "" {
			return nil, fmt.Errorf("kafkaconf: a PEM keystore needs the combined PEM file")
		}
		props = append(props,
			Property{"ssl.keystore.type", "PEM"},
			Property{"ssl.keystore.location", p.CombinedPEM},
			Property{"ssl.truststore.type", "PEM"},
			Property{"ssl.truststore.location", p.CA},
		)
	case "PKCS12":
		if p.Keystore == "" || p.Truststore == "" {
			return nil, fmt.Errorf("kafkaconf: a PKCS12 keystore needs keystore and truststore files")
		}
		props = append(props,
			Property{"ssl.keystore.type", "PKCS12"},
			Property{"ssl.keystore.location", p.Keystore},
			Property{"ssl.keystore.password", password},
			Property{"ssl.key.password", password},
			Property{"ssl.truststore.type", "PKCS12"},
			Property{"ssl.truststore.location", p.Truststore},
			Property{"ssl.truststore.password", password},
		)
	default:
		return nil, fmt.Errorf("kafkaconf: keystore type %q is not PEM or PKCS12", storeType)
	}
	// Java disables the host-name check with an empty value.
	alg := "https"
	if algorithm(s) == "none" {
		alg = ""
	}
	props = append(props,
		Property{"ssl.endpoint.identification.algorithm", alg},
		Property{"ssl.enabled.protocols", "TLSv1.3,TLSv1.2"},
		Property{"ssl.cipher.suites", DefaultJavaCipherSuites},
	)
	// Java's empty algorithm is meaningful, so here only Extra removes.
	return apply(props, s.Extra), nil
}

// Java renders a Java client.properties file.
func Java(p Paths, s Settings, storeType, password string) ([]byte, error) {
	props, err := JavaProperties(p, s, storeType, password)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Rendered by edgeid-helper on every SVID rotation.\n")
	for _, pr := range props {
		if err := checkLine(pr); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s=%s\n", pr.Key, javaEscape(pr.Value))
	}
	return b.Bytes(), nil
}

// Render executes a user template with data. Missing keys are errors.
func Render(name, text string, data TemplateData) ([]byte, error) {
	tmpl, err := Parse(name, text)
	if err != nil {
		return nil, err
	}
	return Execute(tmpl, data)
}

// Parse parses a user template once, at startup.
func Parse(name, text string) (*template.Template, error) {
	tmpl, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("kafkaconf: template %s: %w", name, err)
	}
	return tmpl, nil
}

// ReferencesPassword reports whether tmpl (or a template it defines) may
// write TemplateData.Password: it names a Password field, or it passes the
// whole data value on (a bare "." or "$", which could print every field).
// A file rendered from such a template is a secret and gets the key's file
// mode.
func ReferencesPassword(tmpl *template.Template) bool {
	for _, t := range tmpl.Templates() {
		if t.Tree != nil && nodeReferencesPassword(t.Tree.Root) {
			return true
		}
	}
	return false
}

func nodeReferencesPassword(n parse.Node) bool {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return false
	}
	names := func(idents []string) bool { return slices.Contains(idents, "Password") }
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if nodeReferencesPassword(c) {
				return true
			}
		}
	case *parse.ActionNode:
		return nodeReferencesPassword(n.Pipe)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			if nodeReferencesPassword(c) {
				return true
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if nodeReferencesPassword(a) {
				return true
			}
		}
	case *parse.FieldNode:
		return names(n.Ident)
	case *parse.ChainNode:
		return names(n.Field) || nodeReferencesPassword(n.Node)
	case *parse.VariableNode:
		// "$" alone is the whole data value; "$.Password" names the field.
		return len(n.Ident) == 1 && n.Ident[0] == "$" || names(n.Ident)
	case *parse.DotNode:
		return true
	case *parse.IfNode:
		return nodeReferencesPassword(n.Pipe) || nodeReferencesPassword(n.List) || nodeReferencesPassword(n.ElseList)
	case *parse.RangeNode:
		return nodeReferencesPassword(n.Pipe) || nodeReferencesPassword(n.List) || nodeReferencesPassword(n.ElseList)
	case *parse.WithNode:
		return nodeReferencesPassword(n.Pipe) || nodeReferencesPassword(n.List) || nodeReferencesPassword(n.ElseList)
	case *parse.TemplateNode:
		return nodeReferencesPassword(n.Pipe)
	}
	return false
}

// Execute renders a parsed template.
func Execute(tmpl *template.Template, data TemplateData) ([]byte, error) {
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("kafkaconf: template %s: %w", tmpl.Name(), err)
	}
	return b.Bytes(), nil
}

func algorithm(s Settings) string {
	if s.EndpointIdentificationAlgorithm == "none" {
		return "none"
	}
	return "https"
}

func ciphers(s Settings) string {
	if s.CipherSuites != "" {
		return s.CipherSuites
	}
	return DefaultCipherSuites
}

// apply overlays extra on props: same key replaces in place, empty value
// removes, new keys append.
func apply(props, extra []Property) []Property {
	for _, e := range extra {
		found := false
		for i := range props {
			if props[i].Key == e.Key {
				props[i].Value = e.Value
				found = true
			}
		}
		if !found {
			props = append(props, e)
		}
	}
	out := props[:0]
	for _, p := range props {
		if p.Value == "" && !keepEmpty(p.Key) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// keepEmpty lists keys whose empty value means something.
func keepEmpty(key string) bool {
	return key == "ssl.endpoint.identification.algorithm"
}

func checkLine(p Property) error {
	if p.Key == "" || strings.ContainsAny(p.Key, "=\n\r") || strings.ContainsAny(p.Value, "\n\r") {
		return fmt.Errorf("kafkaconf: property %q has an empty key, '=' in the key or a newline", p.Key)
	}
	return nil
}

func javaEscape(v string) string {
	return strings.ReplaceAll(v, `\`, `\\`)
}
