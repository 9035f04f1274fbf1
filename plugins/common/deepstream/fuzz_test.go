package deepstream

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, stays within its limits, and that
// everything it accepts formats back to text it reads to the same KeyFile.
// The seed corpus is in testdata/fuzz/FuzzParse plus the sample configs.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"test5_kafka.txt", "cfg_kafka.txt", "config_infer_primary.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	lim := Limits{MaxBytes: 64 << 10, MaxLineBytes: 4 << 10, MaxGroups: 64, MaxKeys: 512}
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := Parse(data, lim)
		if err != nil {
			return
		}
		if len(kf.Groups) > lim.MaxGroups {
			t.Fatalf("%d groups over limit", len(kf.Groups))
		}
		again, err := Parse([]byte(kf.String()), DefaultLimits)
		if err != nil {
			t.Fatalf("formatted output does not parse: %v\n%s", err, kf.String())
		}
		if !reflect.DeepEqual(kf.String(), again.String()) || len(kf.Groups) != len(again.Groups) {
			t.Fatalf("round trip changed the file:\n%s\n---\n%s", kf.String(), again.String())
		}
		for _, g := range kf.Groups {
			if kf.Group(g.Name) != g {
				t.Fatalf("group index broken for %q", g.Name)
			}
			for _, e := range g.Entries {
				_, _, _ = g.String(e.Key)
				_, _, _ = g.StringList(e.Key)
				_, _, _ = g.Int(e.Key)
				_, _, _ = g.Bool(e.Key)
			}
		}
		app, err := ParseApp(kf)
		if err != nil {
			return
		}
		for _, s := range app.Sinks {
			ProtoFromLib(s.ProtoLib)
			BrokerAddr(s.ConnStr)
		}
		_, _ = InferModels(kf)
		_, _ = ParseBrokerConfig(kf)
	})
}
