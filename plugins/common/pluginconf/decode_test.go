package pluginconf

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type testAuth struct {
	Token string `hcl:"token,optional"`
}

type testConfig struct {
	Addr  string    `hcl:"addr,optional"`
	Count int       `hcl:"count,optional"`
	List  []string  `hcl:"list,optional"`
	Auth  *testAuth `hcl:"auth,block"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(t *testing.T, c *testConfig)
	}{
		{
			name: "all keys",
			in:   "addr = \"http://127.0.0.1:8200\"\ncount = 3\nlist = [\"a\", \"b\"]\nauth {\n  token = \"x\"\n}\n",
			check: func(t *testing.T, c *testConfig) {
				if c.Addr != "http://127.0.0.1:8200" || c.Count != 3 || len(c.List) != 2 || c.Auth == nil || c.Auth.Token != "x" {
					t.Fatalf("decoded %+v", c)
				}
			},
		},
		{name: "empty", in: "", check: func(t *testing.T, c *testConfig) {}},
		{name: "unknown key names key and line", in: "addr = \"a\"\nadr = \"b\"\n", wantErr: `plugin_data:2,1-4: Unsupported argument; An argument named "adr" is not expected here.`},
		{name: "wrong type", in: "count = \"three\"\n", wantErr: "plugin_data:1,10-15: Unsuitable value type"},
		{name: "syntax error", in: "addr = \n", wantErr: "unable to parse plugin configuration: plugin_data:1"},
		{name: "too large", in: strings.Repeat("#", MaxConfigBytes+1), wantErr: "over the 1048576 byte limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c testConfig
			err := Decode(tt.in, &c)
			if tt.wantErr != "" {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("code = %v, want InvalidArgument (err %v)", status.Code(err), err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, &c)
		})
	}
}
