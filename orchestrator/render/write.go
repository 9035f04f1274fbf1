package render

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/edgeid/edgeid/internal/fsutil"
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
// under out/<host>/, mirroring their paths on the host, plus one systemd
// unit per service under etc/systemd/system (see SystemdUnits), a
// services.txt listing the host's services in start order with the account
// each runs as, and an ownership.txt with the mode and owner every
// directory and file needs on the host. Each file is written atomically.
// It returns the hosts written.
func WriteBundle(plan *Plan, out, host string) ([]string, error) {
	var written []string
	for _, h := range plan.Hosts {
		if host != "" && h.Name != host {
			continue
		}
		root := filepath.Join(out, h.Name)
		for _, f := range h.Files {
			if err := fsutil.WriteFileAtomicMkdir(filepath.Join(root, strings.TrimPrefix(f.Path, "/")), f.Content, f.Mode, fsutil.Keep); err != nil {
				return written, err
			}
		}
		for _, f := range SystemdUnits(plan, h) {
			if err := fsutil.WriteFileAtomicMkdir(filepath.Join(root, strings.TrimPrefix(f.Path, "/")), f.Content, f.Mode, fsutil.Keep); err != nil {
				return written, err
			}
		}
		if err := fsutil.WriteFileAtomicMkdir(filepath.Join(root, "services.txt"), servicesManifest(h), 0o644, fsutil.Keep); err != nil {
			return written, err
		}
		if err := fsutil.WriteFileAtomicMkdir(filepath.Join(root, "ownership.txt"), ownershipManifest(h), 0o644, fsutil.Keep); err != nil {
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
// name, the account (uid:gid) and the command line.
func servicesManifest(h *Host) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Services of host %s in start order: name<TAB>uid:gid<TAB>command.\n", h.Name)
	for _, s := range h.Services {
		fmt.Fprintf(&b, "%s\t%d:%d\t%s\n", s.Name, s.Account.UID, s.Account.GID, strings.Join(s.Argv, " "))
	}
	return []byte(b.String())
}

// ownershipManifest lists what a host's directories and files need, one
// per line: mode, uid:gid and path (directories first, parents first).
func ownershipManifest(h *Host) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Ownership on host %s: mode<TAB>uid:gid<TAB>path (apply with chown/chmod as root).\n", h.Name)
	for _, d := range h.Dirs {
		fmt.Fprintf(&b, "%04o\t%d:%d\t%s/\n", d.Mode, d.Owner.UID, d.Owner.GID, d.Path)
	}
	for _, f := range h.Files {
		gid := f.Owner.GID
		if !f.Group.IsRoot() {
			gid = f.Group.GID
		}
		fmt.Fprintf(&b, "%04o\t%d:%d\t%s\n", f.Mode, f.Owner.UID, gid, f.Path)
	}
	return []byte(b.String())
}

// Install makes a host's directories and writes its files at their paths,
// atomically, each with its mode and owner (when chown is set; a run
// without root privileges leaves everything owned by its own user). It
// returns the paths whose content changed (or that did not exist).
func Install(h *Host, chown bool) ([]string, error) {
	owner := func(a Account) fsutil.Owner {
		if !chown {
			return fsutil.Keep
		}
		return a.Owner()
	}
	for _, d := range h.Dirs {
		if err := os.MkdirAll(filepath.Dir(d.Path), 0o755); err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
		if err := fsutil.MkdirOwned(d.Path, d.Mode, owner(d.Owner)); err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
	}
	var changed []string
	for _, f := range h.Files {
		o := owner(f.Owner)
		if chown && !f.Group.IsRoot() {
			o.GID = f.Group.GID
		}
		if old, err := os.ReadFile(f.Path); err == nil && string(old) == string(f.Content) {
			if err := setModeOwner(f.Path, f.Mode, o); err != nil {
				return changed, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			return changed, fmt.Errorf("render: %w", err)
		}
		if err := fsutil.WriteFileAtomicOwned(f.Path, f.Content, f.Mode, o); err != nil {
			return changed, fmt.Errorf("render: %w", err)
		}
		changed = append(changed, f.Path)
	}
	return changed, nil
}

// setModeOwner converges an unchanged file's owner and mode.
func setModeOwner(path string, mode os.FileMode, o fsutil.Owner) error {
	if o != fsutil.Keep {
		if err := os.Lchown(path, o.UID, o.GID); err != nil {
			return fmt.Errorf("render: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	return nil
}
