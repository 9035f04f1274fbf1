package harness

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error

	versionsOnce sync.Once
	versions     map[string]string
	versionsErr  error
)

// RepoRoot returns the root of the edgeid repository (the directory holding
// the root go.mod), found by walking up from the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && strings.HasPrefix(string(data), "module github.com/edgeid/edgeid\n") {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no go.mod for github.com/edgeid/edgeid above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("harness: %v", rootErr)
	}
	return rootDir
}

// Versions returns the pinned versions and the cache location from
// scripts/versions.sh, keyed by variable name (SPIRE_VERSION, VAULT_VERSION,
// SPIFFE_HELPER_VERSION, KUBE_VERSION, ETCD_VERSION, EDGEID_BIN).
func Versions(t testing.TB) map[string]string {
	t.Helper()
	root := RepoRoot(t)
	versionsOnce.Do(func() {
		versions, versionsErr = readVersions(filepath.Join(root, "scripts", "versions.sh"))
	})
	if versionsErr != nil {
		t.Fatalf("harness: %v", versionsErr)
	}
	return versions
}

// readVersions reads the plain NAME=value assignments of versions.sh and
// resolves the cache directory the same way the script does.
func readVersions(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read pinned versions: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") || strings.ContainsAny(value, "$\"") {
			continue
		}
		out[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read pinned versions: %w", err)
	}
	cache := os.Getenv("EDGEID_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("locate the binary cache: %w", err)
		}
		cache = filepath.Join(home, ".cache", "edgeid")
	}
	out["EDGEID_BIN"] = filepath.Join(cache, "bin")
	return out, nil
}

// pinnedBin returns the cached path of a pinned binary, failing the test with
// a message naming the binary and the command that builds it.
func pinnedBin(t testing.TB, name, versionKey, tool string) string {
	t.Helper()
	path, err := pinnedPath(Versions(t), name, versionKey, tool)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return path
}

// pinnedPath resolves a pinned binary in the cache described by v.
func pinnedPath(v map[string]string, name, versionKey, tool string) (string, error) {
	version := v[versionKey]
	if version == "" {
		return "", fmt.Errorf("scripts/versions.sh does not pin %s", versionKey)
	}
	path := filepath.Join(v["EDGEID_BIN"], name+"-"+version, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s %s is missing (%s): build it with `make tools` or `scripts/build-tools.sh %s`", name, version, path, tool)
	}
	return path, nil
}

// SpireServerBin returns the path of the pinned spire-server binary.
func SpireServerBin(t testing.TB) string {
	return pinnedBin(t, "spire-server", "SPIRE_VERSION", "spire")
}

// SpireAgentBin returns the path of the pinned spire-agent binary.
func SpireAgentBin(t testing.TB) string {
	return pinnedBin(t, "spire-agent", "SPIRE_VERSION", "spire")
}

// VaultBin returns the path of the pinned vault binary.
func VaultBin(t testing.TB) string {
	return pinnedBin(t, "vault", "VAULT_VERSION", "vault")
}

// KubeAPIServerBin returns the path of the pinned kube-apiserver binary.
func KubeAPIServerBin(t testing.TB) string {
	return pinnedBin(t, "kube-apiserver", "KUBE_VERSION", "kube")
}

// EtcdBin returns the path of the pinned etcd binary (kube-apiserver's
// storage).
func EtcdBin(t testing.TB) string {
	return pinnedBin(t, "etcd", "ETCD_VERSION", "kube")
}

// SpiffeHelperBin returns the path of the pinned spiffe-helper binary, built
// only for side-by-side comparisons.
func SpiffeHelperBin(t testing.TB) string {
	return pinnedBin(t, "spiffe-helper", "SPIFFE_HELPER_VERSION", "spiffe-helper")
}

// RequireCommand returns the path of a program from the system PATH (kcat,
// mosquitto, openssl, ...), failing the test with a clear message when it is
// not installed.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("harness: %s is not installed: run `make deps` (scripts/install-deps.sh) to install it", name)
	}
	return path
}

// Plugin is an edgeid plugin binary built for a test.
type Plugin struct {
	// Path is the binary, for plugin_cmd.
	Path string
	// Checksum is the binary's SHA-256 in hex, for plugin_checksum.
	Checksum string
}

var (
	pluginMu    sync.Mutex
	pluginBuilt = map[string]Plugin{}
)

// BuildPlugin builds the edgeid binary at pkg (a path relative to the
// repository root, such as "./plugins/cmd/edgeid-nodeattestor-kubeedge-agent")
// once per test process, and returns its path and checksum.
func BuildPlugin(t testing.TB, pkg string) Plugin {
	t.Helper()
	return BuildBinary(t, pkg, filepath.Base(pkg))
}

// BuildBinary builds the Go main package pkg (relative to the repository
// root) into a per-process directory under the name name, once per process.
func BuildBinary(t testing.TB, pkg, name string) Plugin {
	t.Helper()
	return BuildBinaryTags(t, pkg, name, "")
}

// BuildBinaryTags is BuildBinary with build tags (comma-separated), for
// test builds such as the bootstrap's crash hooks (edgeid_testhooks).
func BuildBinaryTags(t testing.TB, pkg, name, tags string) Plugin {
	t.Helper()
	root := RepoRoot(t)
	pluginMu.Lock()
	defer pluginMu.Unlock()
	key := pkg + "\x00" + name + "\x00" + tags
	if p, ok := pluginBuilt[key]; ok {
		return p
	}
	// Binaries go to a stable directory in the cache rather than a fresh
	// temporary one, so repeated runs do not fill the disk. Each build goes
	// to a temporary name and is renamed into place, so test processes that
	// build the same binary concurrently never see a partial file.
	// One directory per checkout: two worktrees testing at once must
	// not run each other's builds.
	tree := sha256.Sum256([]byte(root))
	dir := filepath.Join(filepath.Dir(Versions(t)["EDGEID_BIN"]), "testbin", hex.EncodeToString(tree[:6]), strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "_"))
	if tags != "" {
		dir += "+" + strings.ReplaceAll(tags, ",", "+")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	out := filepath.Join(dir, name)
	tmp := fmt.Sprintf("%s.tmp.%d", out, os.Getpid())
	cmd := exec.Command("go", "build", "-tags", tags, "-o", tmp, pkg)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: go build %s: %v\n%s", pkg, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatalf("harness: %v", err)
	}
	sum, err := FileSHA256(out)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	p := Plugin{Path: out, Checksum: sum}
	pluginBuilt[key] = p
	return p
}

// FileSHA256 returns the hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// EdgeidPackages are edgeid's own programs: the CLI, the helper, the
// plugins and the DeepStream stand-in (`make build-bin` builds the same).
var EdgeidPackages = []string{
	"./orchestrator/cmd/edgeid",
	"./helper/cmd/edgeid-helper",
	"./plugins/cmd/edgeid-upstreamauthority-vaultpki",
	"./plugins/cmd/edgeid-nodeattestor-kubeedge-server",
	"./plugins/cmd/edgeid-nodeattestor-kubeedge-agent",
	"./plugins/cmd/edgeid-workloadattestor-deepstream",
	"./test/standin/deepstream-test5-app",
}

// BuildEdgeidBinDir builds every edgeid program into one new directory, as
// `edgeid up --bin-dir` expects, and returns it. Others may search it: on a
// real host the services run its programs under their own accounts.
func BuildEdgeidBinDir(t testing.TB) string {
	t.Helper()
	dir := ShortTempDir(t)
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, EdgeidPackages...)...)
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: build edgeid programs: %v\n%s", err, out)
	}
	return dir
}

// InstallBinDir lays out one directory the way the deploy scripts expect
// /opt/edgeid/bin on a real host: edgeid's programs, built fresh, beside
// the pinned SPIRE server and agent and Vault. The pinned programs are
// hard-linked (copied across file systems), never symlinked: SPIRE's
// unix:path selectors see the path the kernel resolved.
func InstallBinDir(t testing.TB) string {
	t.Helper()
	dir := BuildEdgeidBinDir(t)
	for name, src := range map[string]string{
		"spire-server": SpireServerBin(t),
		"spire-agent":  SpireAgentBin(t),
		"vault":        VaultBin(t),
	} {
		dst := filepath.Join(dir, name)
		if err := os.Link(src, dst); err != nil {
			if err := copyFile(src, dst); err != nil {
				t.Fatalf("harness: install %s: %v", name, err)
			}
		}
	}
	return dir
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// PrometheusBin returns the path of the pinned prometheus binary.
func PrometheusBin(t testing.TB) string {
	return pinnedBin(t, "prometheus", "PROMETHEUS_VERSION", "prometheus")
}

// PromtoolBin returns the path of the pinned promtool binary.
func PromtoolBin(t testing.TB) string {
	return pinnedBin(t, "promtool", "PROMETHEUS_VERSION", "prometheus")
}
