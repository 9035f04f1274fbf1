package render

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/edgeid/edgeid/orchestrator/topology"
)

// Default locations on real hosts.
const (
	DefaultHostRoot = "/var/lib/edgeid"
	DefaultBinDir   = "/opt/edgeid/bin"
)

// HostsEnv is the environment of real hosts: state and sockets under root
// (DefaultHostRoot when empty), the same on every host, and each host
// reached at its node address or else its name, for DNS.
func HostsEnv(top *topology.Topology, bins Binaries, root string) Env {
	if root == "" {
		root = DefaultHostRoot
	}
	addrs := map[string]string{}
	for _, s := range top.Sites {
		for _, n := range s.Nodes {
			if n.Address != "" {
				addrs[n.Name] = n.Address
			}
		}
	}
	return Env{
		HostRoot: func(string) string { return root },
		HostAddr: func(host string) string {
			if a, ok := addrs[host]; ok {
				return a
			}
			return host
		},
		Port: func(_, _ string, def int) int { return def },
		Bins: bins,
	}
}

// InstalledBinaries are the program paths of a real host, every program
// in binDir (DefaultBinDir when empty), with the plugin checksums taken
// from the builds in pluginDir: the same binaries are shipped to (or
// already are) in binDir.
func InstalledBinaries(binDir, pluginDir string) (Binaries, error) {
	if binDir == "" {
		binDir = DefaultBinDir
	}
	b := Binaries{
		SpireServer: filepath.Join(binDir, "spire-server"),
		SpireAgent:  filepath.Join(binDir, "spire-agent"),
		Vault:       filepath.Join(binDir, "vault"),
		Edgeid:      filepath.Join(binDir, "edgeid"),
		Helper:      filepath.Join(binDir, "edgeid-helper"),
	}
	for name, dst := range map[string]*Binary{
		"edgeid-upstreamauthority-vaultpki":   &b.VaultPKI,
		"edgeid-nodeattestor-kubeedge-server": &b.KubeEdgeServer,
		"edgeid-nodeattestor-kubeedge-agent":  &b.KubeEdgeAgent,
		"edgeid-workloadattestor-deepstream":  &b.DeepStream,
	} {
		sum, err := FileSHA256(filepath.Join(pluginDir, name))
		if err != nil {
			return b, fmt.Errorf("render: plugin checksum: %w", err)
		}
		*dst = Binary{Path: filepath.Join(binDir, name), Checksum: sum}
	}
	return b, nil
}

// FileSHA256 returns the hex SHA-256 of the file at path.
func FileSHA256(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return sha256Hex(data), nil
}

// WriteBundle writes the files of one host (or every host when host is "")
// under out/<host>/, mirroring their paths on the host, plus a
// services.txt listing the host's services in start order. Each file is
// written atomically. It returns the hosts written.
func WriteBundle(plan *Plan, out, host string) ([]string, error) {
	var written []string
	for _, h := range plan.Hosts {
		if host != "" && h.Name != host {
			continue
		}
		root := filepath.Join(out, h.Name)
		for _, f := range h.Files {
			if err := WriteFileAtomic(filepath.Join(root, strings.TrimPrefix(f.Path, "/")), f.Content, f.Mode); err != nil {
				return written, err
			}
		}
		if err := WriteFileAtomic(filepath.Join(root, "services.txt"), servicesManifest(h), 0o644); err != nil {
			return written, err
		}
		written = append(written, h.Name)
	}
	if host != "" && len(written) == 0 {
		names := make([]string, len(plan.Hosts))
		for i, h := range plan.Hosts {
			names[i] = h.Name
		}
		sort.Strings(names)
		return nil, fmt.Errorf("render: no host %q in the topology (hosts: %s)", host, strings.Join(names, ", "))
	}
	return written, nil
}

// servicesManifest lists a host's services in start order, one per line:
// name, then the command line.
func servicesManifest(h *Host) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Services of host %s in start order: name<TAB>command.\n", h.Name)
	for _, s := range h.Services {
		fmt.Fprintf(&b, "%s\t%s\n", s.Name, strings.Join(s.Argv, " "))
	}
	return []byte(b.String())
}

// Install writes a host's files at their paths, atomically, and returns
// the paths whose content changed (or that did not exist).
func Install(h *Host) ([]string, error) {
	var changed []string
	for _, f := range h.Files {
		if old, err := os.ReadFile(f.Path); err == nil && string(old) == string(f.Content) {
			if err := os.Chmod(f.Path, f.Mode); err != nil {
				return changed, fmt.Errorf("render: %w", err)
			}
			continue
		}
		if err := WriteFileAtomic(f.Path, f.Content, f.Mode); err != nil {
			return changed, err
		}
		changed = append(changed, f.Path)
	}
	return changed, nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed into place, so a reader (or a crash) never
// sees a partial file. The mode is applied even when path exists.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("render: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("render: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("render: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	return nil
}
