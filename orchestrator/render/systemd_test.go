package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// unitLines maps each "Key=" of a unit to its values, in order.
func unitLines(content string) map[string][]string {
	out := map[string][]string{}
	for _, l := range strings.Split(content, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			out[k] = append(out[k], v)
		}
	}
	return out
}

func hostUnits(t *testing.T, p *Plan, host string) map[string]map[string][]string {
	t.Helper()
	h := p.Host(host)
	if h == nil {
		t.Fatalf("no host %s", host)
	}
	out := map[string]map[string][]string{}
	for _, f := range SystemdUnits(p, h) {
		out[strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f.Path), "edgeid-"), ".service")] = unitLines(string(f.Content))
	}
	if len(out) != len(h.Services) {
		t.Fatalf("host %s: %d units for %d services", host, len(out), len(h.Services))
	}
	return out
}

// Each unit is ordered after the services of earlier phases of its host
// and requires the ones it cannot run without; it runs as its service's
// account with exactly its capabilities, writes only its own directories,
// and only Vault is Type=notify.
func TestSystemdUnitsOrderAccountsAndHardening(t *testing.T) {
	plan := samplePlan(t)
	for _, tc := range []struct {
		host, service string
		typ           string
		after         []string
		requires      string
		caps          string
	}{
		{"cloud", "vault", "notify", nil, "", ""},
		{"cloud", "spire-server", "simple", []string{"vault"}, "edgeid-vault.service", ""},
		{"cloud", "spire-agent", "simple", []string{"vault", "spire-server"}, "edgeid-spire-server.service", "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"},
		{"cloud", "kafka", "simple", []string{"vault", "spire-server", "spire-agent"}, "edgeid-spire-agent.service", ""},
		{"edge-a-1", "upstream-agent", "simple", nil, "", ""},
		{"edge-a-1", "spire-server", "simple", []string{"upstream-agent"}, "edgeid-upstream-agent.service", ""},
		{"edge-a-1", "spire-agent", "simple", []string{"upstream-agent", "spire-server"}, "edgeid-spire-server.service", "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"},
		{"edge-a-1", "helper-deepstream_cam-pipeline", "simple", []string{"upstream-agent", "spire-server", "spire-agent"}, "edgeid-spire-agent.service", ""},
	} {
		units := hostUnits(t, plan, tc.host)
		u := units[tc.service]
		_, svc := plan.Service(Ref(tc.host, tc.service))
		name := tc.host + "/" + tc.service
		if u == nil || svc == nil {
			t.Fatalf("%s: no unit or service", name)
		}
		want := []string{"network-online.target"}
		for _, a := range tc.after {
			want = append(want, "edgeid-"+a+".service")
		}
		checks := map[string]string{
			"Type": tc.typ, "After": strings.Join(want, " "), "Requires": tc.requires,
			"User": strconv.Itoa(svc.Account.UID), "Group": strconv.Itoa(svc.Account.GID),
			"AmbientCapabilities": tc.caps, "CapabilityBoundingSet": tc.caps,
			"ExecStart":       strings.Join(svc.Argv, " "),
			"Restart":         "on-failure",
			"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
			"LockPersonality": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		}
		for k, v := range checks {
			if got := strings.Join(u[k], "|"); got != v {
				t.Errorf("%s: %s=%q, want %q", name, k, got, v)
			}
		}
		if svc.Account.UID == 0 {
			t.Errorf("%s runs as root", name)
		}
		rw := strings.Join(u["ReadWritePaths"], " ")
		if !strings.Contains(rw, svc.DataDir) && !strings.Contains(rw, filepath.Dir(svc.DataDir)) {
			t.Errorf("%s: ReadWritePaths=%s lacks its state directory %s", name, rw, svc.DataDir)
		}
		if strings.Contains(" "+rw+" ", " /var/lib/edgeid ") {
			t.Errorf("%s: ReadWritePaths=%s opens the whole state root", name, rw)
		}
	}
}

func TestSystemdCommandQuoting(t *testing.T) {
	got := systemdCommand([]string{"/bin/app", "-x", "a b", "50%", "$HOME", `say "hi"`, ""})
	want := `/bin/app -x "a b" 50%% $$HOME "say \"hi\"" ""`
	if got != want {
		t.Errorf("systemdCommand = %s, want %s", got, want)
	}
}

// TestSystemdUnitsVerify renders every host's units with its programs in
// a temporary bin directory (systemd-analyze checks that ExecStart is
// executable) and runs systemd-analyze verify on each host's set, with
// the set's directory on the unit path so that Requires= and After=
// resolve. systemd is not PID 1 here: verify loads and checks the units
// without starting them. Any warning about one of them fails the test.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed: run `make deps` (scripts/install-deps.sh installs Debian's systemd)")
	}
	top := sampleTopology(t)
	env := testEnv(top)
	bin := t.TempDir()
	for _, p := range []*string{&env.Bins.SpireServer, &env.Bins.SpireAgent, &env.Bins.Vault, &env.Bins.Edgeid, &env.Bins.Helper} {
		*p = filepath.Join(bin, filepath.Base(*p))
		if err := os.WriteFile(*p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := Build(top, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range plan.Hosts {
		dir := t.TempDir()
		var units []string
		for _, f := range SystemdUnits(plan, h) {
			p := filepath.Join(dir, filepath.Base(f.Path))
			if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
				t.Fatal(err)
			}
			units = append(units, p)
		}
		cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...)
		cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
		out, err := cmd.CombinedOutput()
		t.Logf("host %s: systemd-analyze verify --man=no %d units: %v\n%s", h.Name, len(units), err, out)
		if err != nil {
			t.Errorf("host %s: systemd-analyze verify: %v", h.Name, err)
		}
		if strings.Contains(string(out), "edgeid-") {
			t.Errorf("host %s: systemd-analyze reports on the units:\n%s", h.Name, out)
		}
	}
}
