package pluginconf

import (
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// buildTest is an HCL struct as a plugin has one.
type buildTest struct {
	Name    string `hcl:"name,optional"`
	Timeout string `hcl:"timeout,optional"`
	NeedsTD bool   `hcl:"needs_td,optional"`
	Warn    bool   `hcl:"warn,optional"`
	called  bool
}

type built struct {
	name        string
	timeout     time.Duration
	trustDomain spiffeid.TrustDomain
}

func (b *buildTest) BuildConfig(core Core, s *Status) *built {
	b.called = true
	if b.NeedsTD {
		core.RequireTrustDomain(s)
	}
	if b.Name == "" {
		s.ReportError("name is required")
	}
	if b.Warn {
		s.ReportInfo("warned")
	}
	return &built{
		name:        b.Name,
		timeout:     s.Duration("timeout", b.Timeout, Duration{Default: time.Second}),
		trustDomain: core.TrustDomain,
	}
}

func request(td, hcl string) Request {
	return &configv1.ValidateRequest{CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: td}, HclConfiguration: hcl}
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name      string
		req       Request
		wantErr   string // the whole InvalidArgument message; empty = success
		wantCall  bool
		wantNotes []string
		check     func(t *testing.T, c *built)
	}{
		{
			name: "decodes and builds", req: request("example.org", "name = \"a\"\ntimeout = \"3s\"\nwarn = true"),
			wantCall: true, wantNotes: []string{"warned"},
			check: func(t *testing.T, c *built) {
				if c.name != "a" || c.timeout != 3*time.Second || c.trustDomain.Name() != "example.org" {
					t.Fatalf("built %+v", c)
				}
			},
		},
		{
			name: "every problem, trust domain first", req: request("Not A TD", "timeout = \"soon\""), wantCall: true,
			wantErr: `invalid configuration: trust domain "Not A TD" from the core configuration is invalid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores; name is required; timeout: "soon" is not a duration such as "1s"`,
		},
		{
			name: "problems keep the notes", req: request("example.org", "warn = true"), wantCall: true,
			wantErr: "invalid configuration: name is required", wantNotes: []string{"warned"},
		},
		{
			name: "unknown key stops before the plugin", req: request("example.org", "zzz = \"a\""),
			wantErr: `invalid plugin configuration: plugin_data:1,1-4: Unsupported argument; An argument named "zzz" is not expected here.`,
		},
		{
			name: "missing trust domain is fine unless required", req: &configv1.ConfigureRequest{HclConfiguration: "name = \"a\""}, wantCall: true,
			check: func(t *testing.T, c *built) {
				if !c.trustDomain.IsZero() {
					t.Fatalf("trust domain %v", c.trustDomain)
				}
			},
		},
		{
			name: "missing trust domain when required", req: request("", "name = \"a\"\nneeds_td = true"), wantCall: true,
			wantErr: `invalid configuration: trust domain "" from the core configuration is invalid: trust domain is missing`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hcl buildTest
			c, s := Build(tt.req, &hcl)
			if hcl.called != tt.wantCall {
				t.Fatalf("BuildConfig called = %v, want %v", hcl.called, tt.wantCall)
			}
			if got := s.Notes(); strings.Join(got, "|") != strings.Join(tt.wantNotes, "|") {
				t.Fatalf("notes %q, want %q", got, tt.wantNotes)
			}
			if tt.wantErr != "" {
				st := status.Convert(s.Err())
				if c != nil || !s.HasError() || st.Code() != codes.InvalidArgument || st.Message() != tt.wantErr {
					t.Fatalf("Build = %+v, %v; want nil and InvalidArgument %q", c, s.Err(), tt.wantErr)
				}
				if resp := s.ValidateResponse(); resp.Valid || resp.Notes[0] != tt.wantErr {
					t.Fatalf("ValidateResponse = %v", resp)
				}
				return
			}
			if err := s.Err(); err != nil || c == nil {
				t.Fatalf("Build = %+v, %v", c, err)
			}
			tt.check(t, c)
		})
	}
}
