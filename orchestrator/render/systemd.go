package render

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SystemdUnitDir is where WriteBundle puts a host's units, under the
// host's bundle directory, as on the host.
const SystemdUnitDir = "/etc/systemd/system"

// UnitName is the systemd unit of a service: edgeid-<service>.service.
func UnitName(s *Service) string { return "edgeid-" + s.Name + ".service" }

// unitPhase is the start phase of a service, as `edgeid up` orders them:
// Vault, cloud servers, agents of a cloud server (cloud agents and edge
// servers' upstream agents), edge servers, edge agents, the demo broker,
// helpers.
func unitPhase(p *Plan, s *Service) int {
	switch s.Kind {
	case KindVault:
		return 0
	case KindSpireServer:
		if s.Site == "" {
			return 1
		}
		return 3
	case KindSpireAgent:
		if _, up := p.Service(s.Server); up != nil && up.Site == "" {
			return 2
		}
		return 4
	case KindKafka:
		return 5
	default:
		return 6
	}
}

// unitRequires are the services of the same host that s cannot run
// without: the server an agent attests to or an edge server chains
// through (its upstream agent), the agent whose Workload API a workload
// uses, and a managed Vault for a cloud server. A dependency on another
// host is outside systemd's reach and is left to Restart=.
func unitRequires(h *Host, s *Service) []string {
	var out []string
	for i := range h.Services {
		o := &h.Services[i]
		if o.Name == s.Name {
			continue
		}
		switch {
		case Ref(h.Name, o.Name) == s.Server && s.Kind != KindKafka && s.Kind != KindHelper:
			out = append(out, UnitName(o))
		case (s.Kind == KindKafka || s.Kind == KindHelper) && o.Kind == KindSpireAgent && o.Socket == s.Socket:
			out = append(out, UnitName(o))
		case s.Kind == KindSpireServer && s.Site == "" && o.Kind == KindVault:
			out = append(out, UnitName(o))
		}
	}
	return out
}

// unitWritePaths are the directories a service writes: its state and its
// socket's directory (Vault: its whole directory, for the audit log).
func unitWritePaths(s *Service) []string {
	var out []string
	add := func(p string) {
		if p != "" && p != "." && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if s.Kind == KindVault {
		add(filepath.Dir(s.DataDir))
	} else {
		add(s.DataDir)
	}
	if s.Socket != "" && (s.Kind == KindSpireServer || s.Kind == KindSpireAgent) {
		add(filepath.Dir(s.Socket))
	}
	return out
}

// SystemdUnits renders one unit per service of h, for hosts run by
// systemd instead of `edgeid supervise`. Only Vault (1.21 calls
// sd_notify when it serves) is Type=notify; SPIRE 1.13 and edgeid's own
// programs do not notify, so they are Type=simple. The one-shot steps of
// `edgeid up --host` (Vault bootstrap and unseal, registration entries,
// node credentials) are not units: run them once before enabling these.
func SystemdUnits(p *Plan, h *Host) []File {
	var out []File
	for i := range h.Services {
		s := &h.Services[i]
		out = append(out, File{
			Path:    filepath.Join(SystemdUnitDir, UnitName(s)),
			Content: []byte(systemdUnit(p, h, s)),
			Mode:    0o644,
		})
	}
	return out
}

func systemdUnit(p *Plan, h *Host, s *Service) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	line("# Rendered by edgeid render: service %s of host %s. Edit the topology, not this file.", s.Name, h.Name)
	line("[Unit]")
	line("Description=edgeid %s (%s) on %s", s.Name, s.Kind, h.Name)
	line("Documentation=https://github.com/edgeid/edgeid/blob/main/orchestrator/README.md")
	after := []string{"network-online.target"}
	phase := unitPhase(p, s)
	for i := range h.Services {
		if o := &h.Services[i]; unitPhase(p, o) < phase {
			after = append(after, UnitName(o))
		}
	}
	line("Wants=network-online.target")
	line("After=%s", strings.Join(after, " "))
	if req := unitRequires(h, s); len(req) > 0 {
		line("Requires=%s", strings.Join(req, " "))
	}
	for _, n := range s.Needs {
		line("# Copied from host %s before the first start.", s.NeedsFrom)
		line("AssertPathExists=%s", n)
	}
	line("")
	line("[Service]")
	if s.Kind == KindVault {
		line("Type=notify")
	} else {
		line("Type=simple")
	}
	line("ExecStart=%s", systemdCommand(s.Argv))
	line("User=%s", accountName(s.Account.Name, s.Account.UID))
	line("Group=%s", accountName("", s.Account.GID))
	line("Restart=on-failure")
	line("RestartSec=5")
	caps := strings.Join(s.Caps, " ")
	if caps != "" {
		line("AmbientCapabilities=%s", caps)
	}
	line("CapabilityBoundingSet=%s", caps)
	writeHardening(&b, s)
	return b.String()
}

// writeHardening is the sandbox every service tolerates, with the
// exceptions each kind needs: agents read other processes in /proc to
// attest them, and a helper's app may be an interpreter or a JIT.
func writeHardening(b *strings.Builder, s *Service) {
	for _, l := range []string{
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"PrivateDevices=yes",
		"ProtectKernelTunables=yes",
		"ProtectKernelModules=yes",
		"ProtectKernelLogs=yes",
		"ProtectControlGroups=yes",
		"ProtectClock=yes",
		"ProtectHostname=yes",
		"RestrictSUIDSGID=yes",
		"RestrictRealtime=yes",
		"RestrictNamespaces=yes",
		"LockPersonality=yes",
		"SystemCallArchitectures=native",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
	} {
		fmt.Fprintln(b, l)
	}
	if s.Kind != KindSpireAgent {
		fmt.Fprintln(b, "ProtectProc=invisible")
	}
	if s.Kind != KindHelper {
		fmt.Fprintln(b, "MemoryDenyWriteExecute=yes")
		fmt.Fprintln(b, "UMask=0077")
	}
	if paths := unitWritePaths(s); len(paths) > 0 {
		fmt.Fprintf(b, "ReadWritePaths=%s\n", strings.Join(paths, " "))
	}
	fmt.Fprintln(b, "\n[Install]\nWantedBy=multi-user.target")
}

// accountName is User=/Group=: the name when there is one, else the number.
func accountName(name string, id int) string {
	if name != "" {
		return name
	}
	return strconv.Itoa(id)
}

// systemdCommand quotes argv for ExecStart=: every word in double quotes
// where it needs them, with systemd's specifiers (%) and variables ($)
// escaped so that they reach the program as written.
func systemdCommand(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, "%", "%%")
		a = strings.ReplaceAll(a, "$", "$$")
		if a == "" || strings.ContainsAny(a, " \t\"'\\;") {
			a = `"` + strings.ReplaceAll(strings.ReplaceAll(a, `\`, `\\`), `"`, `\"`) + `"`
		}
		words[i] = a
	}
	return strings.Join(words, " ")
}
