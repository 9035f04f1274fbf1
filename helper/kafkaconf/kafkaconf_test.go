package kafkaconf

import (
	"strings"
	"testing"
)

var paths = Paths{
	CA:          "/run/edgeid/certs/svid_bundle.pem",
	Cert:        "/run/edgeid/certs/svid.pem",
	Key:         "/run/edgeid/certs/svid_key.pem",
	CombinedPEM: "/run/edgeid/certs/svid_combined.pem",
	Keystore:    "/run/edgeid/certs/keystore.p12",
	Truststore:  "/run/edgeid/certs/truststore.p12",
}

func lines(b []byte) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

func TestLibrdkafka(t *testing.T) {
	for _, alg := range []string{"https", "none"} {
		out, err := Librdkafka(paths, Settings{BootstrapServers: "127.0.0.1:9093", EndpointIdentificationAlgorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		got := lines(out)
		want := map[string]string{
			"bootstrap.servers":                     "127.0.0.1:9093",
			"security.protocol":                     "ssl",
			"ssl.ca.location":                       paths.CA,
			"ssl.certificate.location":              paths.Cert,
			"ssl.key.location":                      paths.Key,
			"ssl.endpoint.identification.algorithm": alg,
			"ssl.cipher.suites":                     DefaultCipherSuites,
		}
		if len(got) != len(want) {
			t.Fatalf("got %v", got)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	}
	// Every TLS 1.2 suite is ECDHE + AES-GCM.
	for _, s := range strings.Split(DefaultCipherSuites, ":") {
		if !strings.HasPrefix(s, "ECDHE-") || !strings.Contains(s, "-GCM-") {
			t.Errorf("suite %s is not ECDHE AES-GCM", s)
		}
	}
}

func TestExtraOverridesAndRemoves(t *testing.T) {
	out, err := Librdkafka(paths, Settings{Extra: []Property{
		{"ssl.cipher.suites", ""}, {"client.id", "cam-1"}, {"ssl.key.location", "/other/key.pem"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := lines(out)
	if _, ok := got["ssl.cipher.suites"]; ok {
		t.Error("empty extra value must remove the property")
	}
	if got["client.id"] != "cam-1" || got["ssl.key.location"] != "/other/key.pem" {
		t.Errorf("got %v", got)
	}
	if _, err := Librdkafka(paths, Settings{Extra: []Property{{"x", "a\nb"}}}); err == nil {
		t.Error("newline in a value must be refused")
	}
}

func TestDeepStream(t *testing.T) {
	out, err := DeepStream(paths, Settings{BootstrapServers: "ignored:1", EndpointIdentificationAlgorithm: "none"}, "sensor.id")
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	if !strings.Contains(text, "[message-broker]\n") || !strings.Contains(text, "partition-key = sensor.id\n") {
		t.Fatalf("layout:\n%s", text)
	}
	cfg, _ := ProtoCfg(paths, Settings{EndpointIdentificationAlgorithm: "none"})
	if !strings.Contains(text, `proto-cfg = "`+cfg+`"`) {
		t.Fatalf("proto-cfg line missing:\n%s", text)
	}
	for _, want := range []string{"security.protocol=ssl", "ssl.ca.location=" + paths.CA, "ssl.certificate.location=" + paths.Cert,
		"ssl.key.location=" + paths.Key, "ssl.endpoint.identification.algorithm=none"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("proto-cfg lacks %s", want)
		}
	}
	if strings.Contains(cfg, "bootstrap.servers") {
		t.Error("proto-cfg must not carry bootstrap.servers (DeepStream uses conn-str)")
	}
	if len(cfg) >= MaxProtoCfg {
		t.Fatalf("proto-cfg %d chars", len(cfg))
	}

	long := paths
	long.CA = "/" + strings.Repeat("d", 900) + "/bundle.pem"
	if _, err := DeepStream(long, Settings{}, ""); err == nil || !strings.Contains(err.Error(), "fewer than 1024") {
		t.Fatalf("over-long proto-cfg: %v", err)
	}
	if _, err := DeepStream(paths, Settings{Extra: []Property{{"client.id", "a;b"}}}, ""); err == nil {
		t.Fatal("';' in a value must be refused")
	}
}

func TestJava(t *testing.T) {
	out, err := Java(paths, Settings{EndpointIdentificationAlgorithm: "none"}, "PEM", "")
	if err != nil {
		t.Fatal(err)
	}
	got := lines(out)
	if got["ssl.keystore.type"] != "PEM" || got["ssl.keystore.location"] != paths.CombinedPEM ||
		got["ssl.truststore.location"] != paths.CA || got["security.protocol"] != "SSL" {
		t.Fatalf("PEM: %v", got)
	}
	if v, ok := got["ssl.endpoint.identification.algorithm"]; !ok || v != "" {
		t.Fatalf("Java disables the host check with an empty value, got %q present=%v", v, ok)
	}
	out, err = Java(paths, Settings{}, "PKCS12", "pw")
	if err != nil {
		t.Fatal(err)
	}
	got = lines(out)
	if got["ssl.keystore.type"] != "PKCS12" || got["ssl.keystore.location"] != paths.Keystore ||
		got["ssl.truststore.location"] != paths.Truststore || got["ssl.keystore.password"] != "pw" ||
		got["ssl.endpoint.identification.algorithm"] != "https" {
		t.Fatalf("PKCS12: %v", got)
	}
	if _, err := Java(Paths{CA: "x"}, Settings{}, "PEM", ""); err == nil {
		t.Fatal("PEM without combined file must fail")
	}
}

func TestTemplate(t *testing.T) {
	data := TemplateData{Paths: paths, Settings: Settings{EndpointIdentificationAlgorithm: "none"}, SPIFFEID: "spiffe://example.org/cam"}
	data.Properties = LibrdkafkaProperties(paths, data.Settings)
	out, err := Render("t", "# {{.SPIFFEID}}\n{{range .Properties}}{{.Key}}={{.Value}}\n{{end}}ca={{.CA}}\n", data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "# spiffe://example.org/cam\n") || !strings.Contains(string(out), "ca="+paths.CA) ||
		!strings.Contains(string(out), "ssl.key.location="+paths.Key) {
		t.Fatalf("rendered:\n%s", out)
	}
	if _, err := Render("t", "{{.Nope}}", data); err == nil {
		t.Fatal("unknown field must fail")
	}
}

func TestReferencesPassword(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"{{range .Properties}}{{.Key}}={{.Value}}\n{{end}}", false},
		{"bootstrap={{.BootstrapServers}} ca={{.CA}} id={{.SPIFFEID}}", false},
		{"pw={{.Password}}", true},
		{"{{if .Keystore}}pw={{$.Password}}{{end}}", true},
		{"{{with .Settings}}{{.BootstrapServers}}{{end}}{{range .Properties}}{{end}}{{.Password | printf \"%q\"}}", true},
		{"{{printf \"%v\" .}}", true},
		{"{{$}}", true},
		{"{{define \"x\"}}{{.Password}}{{end}}plain", true},
		{"{{template \"y\" .}}{{define \"y\"}}{{.CA}}{{end}}", true},
		{"{{range $p := .Properties}}{{$p.Key}}{{end}}", false},
		{"{{ (index .Properties 0).Key }}", false},
	} {
		tmpl, err := Parse("t", tc.text)
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		if got := ReferencesPassword(tmpl); got != tc.want {
			t.Errorf("ReferencesPassword(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// A client of the local edge gateway gets plaintext to loopback and no
// key or certificate path in any of the three files.
func TestPlaintextThroughLocalGateway(t *testing.T) {
	s := Settings{BootstrapServers: "127.0.0.1:19092", EndpointIdentificationAlgorithm: "https", Plaintext: true,
		Extra: []Property{{"broker.address.family", "v4"}}}
	lib, err := Librdkafka(paths, s)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := DeepStream(paths, s, "")
	if err != nil {
		t.Fatal(err)
	}
	java, err := Java(paths, s, "PEM", "")
	if err != nil {
		t.Fatal(err)
	}
	got := lines(lib)
	want := map[string]string{"bootstrap.servers": "127.0.0.1:19092", "security.protocol": "plaintext", "broker.address.family": "v4"}
	if len(got) != len(want) {
		t.Errorf("librdkafka: got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("librdkafka %s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.Contains(string(ds), `proto-cfg = "security.protocol=plaintext;broker.address.family=v4"`) {
		t.Errorf("cfg_kafka.txt:\n%s", ds)
	}
	if lines(java)["security.protocol"] != "PLAINTEXT" {
		t.Errorf("java:\n%s", java)
	}
	for name, out := range map[string][]byte{"librdkafka": lib, "deepstream": ds, "java": java} {
		if strings.Contains(string(out), "ssl.") || strings.Contains(string(out), paths.Key) {
			t.Errorf("%s names TLS settings or the key although the gateway holds the SVID:\n%s", name, out)
		}
	}
}

// A client of a sealing gateway gets batches capped so that, sealed, they
// stay under a broker's default message size, in librdkafka's file and in
// DeepStream's proto-cfg; extra properties still win.
func TestSealingGatewayCapsBatches(t *testing.T) {
	if max := SealedBatchBytes + SealedBatchRecords*SealedRecordOverhead; max >= 1048588 {
		t.Fatalf("a sealed batch can reach %d bytes, over Kafka's default message.max.bytes", max)
	}
	s := Settings{BootstrapServers: "127.0.0.1:19092", Plaintext: true, SealingGateway: true}
	lib, err := Librdkafka(paths, s)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(lib)
	if got["batch.size"] != "600000" || got["batch.num.messages"] != "1500" {
		t.Errorf("librdkafka for a sealing gateway:\n%s", lib)
	}
	ds, err := DeepStream(paths, s, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ds), "batch.size=600000;batch.num.messages=1500") {
		t.Errorf("cfg_kafka.txt for a sealing gateway:\n%s", ds)
	}
	s.Extra = []Property{{"batch.size", "100000"}}
	if lib, _ = Librdkafka(paths, s); lines(lib)["batch.size"] != "100000" {
		t.Errorf("extra batch.size not applied:\n%s", lib)
	}
	s = Settings{BootstrapServers: "127.0.0.1:19092", Plaintext: true}
	if lib, _ = Librdkafka(paths, s); strings.Contains(string(lib), "batch.") {
		t.Errorf("batch limits without a sealing gateway:\n%s", lib)
	}
}
