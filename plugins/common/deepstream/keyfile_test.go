package deepstream

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseTest5Config(t *testing.T) {
	kf, err := ParseFile(filepath.Join("testdata", "test5_kafka.txt"), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	app, err := ParseApp(kf)
	if err != nil {
		t.Fatal(err)
	}
	wantSinks := []Sink{{
		Group:        "sink1",
		ProtoLib:     "/opt/nvidia/deepstream/deepstream/lib/libnvds_kafka_proto.so",
		ConnStr:      "kafka.example.org;9093",
		Topic:        "detections",
		BrokerConfig: "cfg_kafka.txt",
	}}
	if !reflect.DeepEqual(app.Sinks, wantSinks) {
		t.Errorf("sinks = %+v, want %+v", app.Sinks, wantSinks)
	}
	wantConsumers := []Consumer{{
		Group:      "message-consumer0",
		ProtoLib:   "/opt/nvidia/deepstream/deepstream/lib/libnvds_kafka_proto.so",
		ConnStr:    "kafka.example.org;9093",
		ConfigFile: "cfg_kafka.txt",
		Topics:     []string{"site-a-commands", "site-a-config"},
	}}
	if !reflect.DeepEqual(app.Consumers, wantConsumers) {
		t.Errorf("consumers = %+v, want %+v", app.Consumers, wantConsumers)
	}
	if len(app.Models) != 1 || app.Models[0].Path != "../models/Primary_Detector/resnet18_trafficcamnet.etlt_b1_gpu0_int8.engine" {
		t.Errorf("models = %+v", app.Models)
	}
	if len(app.InferConfigs) != 1 || app.InferConfigs[0].Path != "config_infer_primary.txt" {
		t.Errorf("infer configs = %+v", app.InferConfigs)
	}

	infer, err := ParseFile(filepath.Join("testdata", "config_infer_primary.txt"), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	models, err := InferModels(infer)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range models {
		keys = append(keys, m.Key)
	}
	if want := []string{"model-engine-file", "onnx-file", "int8-calib-file"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("infer model keys = %v, want %v", keys, want)
	}

	kafka, err := ParseFile(filepath.Join("testdata", "cfg_kafka.txt"), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := ParseBrokerConfig(kafka)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(bs.ProtoCfg, "security.protocol=ssl;") {
		t.Errorf("proto-cfg = %q", bs.ProtoCfg)
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		group string
		key   string
		want  string
	}{
		{"crlf", "[a]\r\nk=v\r\n", "a", "k", "v"},
		{"bom", "\xEF\xBB\xBF[a]\nk=v\n", "a", "k", "v"},
		{"spaces around key and value", "[a]\n  k  =   v w  \n", "a", "k", "v w"},
		{"hash inside value is kept", "[a]\nk=v #x\n", "a", "k", "v #x"},
		{"escapes", "[a]\nk=\\sx\\ty\\\\\n", "a", "k", " x\ty\\"},
		{"no trailing newline", "[a]\nk=v", "a", "k", "v"},
		{"locale key", "[a]\nname[de_DE]=x\n", "a", "name[de_DE]", "x"},
		{"empty value", "[a]\nk=\n", "a", "k", ""},
		{"utf8 value", "[a]\nk=caméra\n", "a", "k", "caméra"},
		{"group with spaces", "[Desktop Entry]\nk=v\n", "Desktop Entry", "k", "v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kf, err := Parse([]byte(tt.in), DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := kf.Group(tt.group).String(tt.key)
			if err != nil || !ok || got != tt.want {
				t.Fatalf("String(%q) = %q, %v, %v; want %q", tt.key, got, ok, err, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	small := Limits{MaxBytes: 64, MaxLineBytes: 16, MaxGroups: 2, MaxKeys: 2}
	tests := []struct {
		name    string
		in      string
		lim     Limits
		wantErr string
		tooBig  bool
	}{
		{name: "duplicate group", in: "[a]\nk=1\n[b]\n[a]\n", wantErr: "line 4: duplicate group [a] (first on line 1)"},
		{name: "duplicate key", in: "[a]\ntopic=x\ntopic=y\n", wantErr: `line 3: duplicate key "topic" in [a] (first on line 2)`},
		{name: "key before group", in: "k=v\n[a]\n", wantErr: "line 1: key=value pair before the first group"},
		{name: "not a key value", in: "[a]\njust words\n", wantErr: "line 2: line is not a group"},
		{name: "unterminated group", in: "[a\n", wantErr: "line 1: group header does not end with ']'"},
		{name: "empty group", in: "[]\n", wantErr: "empty group name"},
		{name: "bracket in group", in: "[a]b]\n", wantErr: "contains '[' or ']'"},
		{name: "empty key", in: "[a]\n=v\n", wantErr: "empty key"},
		{name: "bad key char", in: "[a]\nk$y=v\n", wantErr: `invalid character '$'`},
		{name: "non utf8", in: "[a]\nk=\xff\xfe\n", wantErr: "line 2: text is not valid UTF-8"},
		{name: "nul byte", in: "[a]\nk=v\x00\n", wantErr: "line 2: control character 0x00"},
		{name: "binary garbage", in: "\x7fELF\x02\x01\x01\x00\x00\x00", wantErr: "control character"},
		{name: "escape bell", in: "[a]\nk=\x07\n", wantErr: "control character 0x07"},
		{name: "file too large", in: strings.Repeat("#", 65), lim: small, tooBig: true, wantErr: "65 bytes, limit 64"},
		{name: "line too long", in: "[a]\nk=" + strings.Repeat("v", 20) + "\n", lim: small, tooBig: true, wantErr: "line 2 is 22 bytes"},
		{name: "too many groups", in: "[a]\n[b]\n[c]\n", lim: small, tooBig: true, wantErr: "more than 2 groups"},
		{name: "too many keys", in: "[a]\na=1\nb=2\nc=3\n", lim: small, tooBig: true, wantErr: "more than 2 keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.lim
			if lim == (Limits{}) {
				lim = DefaultLimits
			}
			_, err := Parse([]byte(tt.in), lim)
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrTooLarge); got != tt.tooBig {
				t.Fatalf("errors.Is(err, ErrTooLarge) = %v, want %v", got, tt.tooBig)
			}
		})
	}
}

func TestValueErrors(t *testing.T) {
	kf, err := Parse([]byte("[sink0]\nenable=yes\ntype=six\ntopic=a\\qb\nlist=a;b\\\n"), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	g := kf.Group("sink0")
	if _, _, err := g.Bool("enable"); err == nil || !strings.Contains(err.Error(), `line 2: [sink0] enable: value "yes" is not a boolean`) {
		t.Errorf("Bool error = %v", err)
	}
	if _, _, err := g.Int("type"); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("Int error = %v", err)
	}
	if _, _, err := g.String("topic"); err == nil || !strings.Contains(err.Error(), `invalid escape sequence "\q"`) {
		t.Errorf("String error = %v", err)
	}
	if _, _, err := g.StringList("list"); err == nil || !strings.Contains(err.Error(), "escape character at end of value") {
		t.Errorf("StringList error = %v", err)
	}
	if _, err := ParseApp(kf); err == nil {
		t.Error("ParseApp accepted enable=yes")
	}
}

func TestStringList(t *testing.T) {
	kf, err := Parse([]byte("[a]\nl= t1 ; t2;;t\\;3;\n"), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := kf.Group("a").StringList("l")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"t1", "t2", "t;3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("list = %q, want %q", got, want)
	}
}

func TestProtoFromLib(t *testing.T) {
	tests := map[string]string{
		"/opt/nvidia/deepstream/deepstream/lib/libnvds_kafka_proto.so": "kafka",
		"libnvds_mqtt_proto.so":        "mqtt",
		"/x/libnvds_amqp_proto.so":     "amqp",
		"/x/libnvds_redis_proto.so":    "redis",
		"/x/libnvds_azure_proto.so":    "azure",
		"libnvds_azure_edge_proto.so":  "azure",
		"/x/libnvds_pravega_proto.so":  "",
		"/x/libkafka_proto.so":         "",
		"libnvds_kafka_proto.so.1.0.0": "kafka",
	}
	for lib, want := range tests {
		got, ok := ProtoFromLib(lib)
		if got != want || ok != (want != "") {
			t.Errorf("ProtoFromLib(%q) = %q, %v; want %q", lib, got, ok, want)
		}
	}
}

func TestBrokerAddr(t *testing.T) {
	tests := map[string]string{
		"kafka.example.org;9093":       "kafka.example.org:9093",
		"127.0.0.1;9092;ignored-topic": "127.0.0.1:9092",
		"::1;9092":                     "[::1]:9092",
		" host ; 1 ":                   "host:1",
		"host":                         "",
		"host;0":                       "",
		"host;99999":                   "",
		";9092":                        "",
		"host;port":                    "",
		"ho st;9092":                   "",
	}
	for in, want := range tests {
		got, ok := BrokerAddr(in)
		if got != want || ok != (want != "") {
			t.Errorf("BrokerAddr(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestParseFileRejectsNonRegular(t *testing.T) {
	if _, err := ParseFile("/dev/zero", DefaultLimits); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("ParseFile(/dev/zero) = %v", err)
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat("#\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(big, Limits{MaxBytes: 10, MaxLineBytes: 10, MaxGroups: 1, MaxKeys: 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ParseFile(big) = %v, want ErrTooLarge", err)
	}
}
