package deepstream

import (
	"context"
	"path"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgeid/edgeid/plugins/common/pluginconf"
)

// PluginName is the name SPIRE configs use for this plugin
// (`WorkloadAttestor "deepstream"`), and the prefix of its selectors.
const PluginName = "deepstream"

// Defaults and bounds of the configuration.
const (
	DefaultChildDepth     = 1
	MaxChildDepth         = 8
	DefaultMaxConfigBytes = 256 << 10
	MaxMaxConfigBytes     = 16 << 20
	DefaultMaxExeBytes    = 512 << 20
	DefaultMaxModelBytes  = 4 << 30
	DefaultInstallDir     = "/opt/nvidia/deepstream/deepstream"
	// DefaultMaxAttestationBytes bounds what one attestation reads from
	// /proc and from config files; MinMaxAttestationBytes and
	// MaxMaxAttestationBytes bound the setting.
	DefaultMaxAttestationBytes = 32 << 20
	MinMaxAttestationBytes     = 64 << 10
	MaxMaxAttestationBytes     = 1 << 30
	// DefaultAttestationTimeout bounds the time of one attestation, hashing
	// included; MinAttestationTimeout and MaxAttestationTimeout bound the
	// setting.
	DefaultAttestationTimeout = 5 * time.Second
	MinAttestationTimeout     = 100 * time.Millisecond
	MaxAttestationTimeout     = time.Minute
	// DefaultCgroupRoot is where the cgroup hierarchies are mounted.
	DefaultCgroupRoot = "/sys/fs/cgroup"
	// maxProcesses bounds how many processes one attestation inspects.
	maxProcesses = 256
)

var (
	defaultAppNames        = []string{"deepstream-*"}
	defaultInterpreters    = []string{"python", "python3", "python3.*"}
	defaultScriptNames     = []string{"deepstream*"}
	defaultLibraryPrefixes = []string{"libnvds_"}
)

var (
	_ pluginsdk.NeedsLogger                     = (*Plugin)(nil)
	_ workloadattestorv1.WorkloadAttestorServer = (*Plugin)(nil)
	_ configv1.ConfigServer                     = (*Plugin)(nil)
)

// Config is the plugin's HCL configuration (the plugin_data block).
type Config struct {
	// AppNames are glob patterns matched against the basename of
	// /proc/<pid>/exe. Default ["deepstream-*"].
	AppNames []string `hcl:"app_names,optional"`
	// Interpreters are glob patterns for interpreters whose script decides
	// (default ["python", "python3", "python3.*"]).
	Interpreters []string `hcl:"interpreters,optional"`
	// ScriptNames are glob patterns matched against the basename of the
	// script an interpreter runs. Default ["deepstream*"].
	ScriptNames []string `hcl:"script_names,optional"`
	// LibraryPrefixes are basename prefixes of shared libraries whose
	// presence in /proc/<pid>/maps marks a DeepStream app. Default
	// ["libnvds_"].
	LibraryPrefixes []string `hcl:"library_prefixes,optional"`
	// DisableLibraryMatch turns the memory-map check off.
	DisableLibraryMatch bool `hcl:"disable_library_match,optional"`
	// ChildDepth is how many generations of the caller's children are
	// examined when the caller is not a DeepStream app itself. 0 attests the
	// caller only. Default 1, at most 8.
	ChildDepth *int `hcl:"child_depth,optional"`
	// HashModels adds model_sha256 selectors for the model and engine files
	// the config references. Off by default: engines are large.
	HashModels bool `hcl:"hash_models,optional"`
	// MaxConfigBytes bounds every config file read. Default 256 KiB.
	MaxConfigBytes int64 `hcl:"max_config_bytes,optional"`
	// MaxExeBytes bounds the executable (or script) hashed for exe_sha256.
	// Default 512 MiB.
	MaxExeBytes int64 `hcl:"max_exe_bytes,optional"`
	// MaxModelBytes bounds each model file hashed. Default 4 GiB.
	MaxModelBytes int64 `hcl:"max_model_bytes,optional"`
	// InstallDir is where the DeepStream install (with its `version` file) is
	// looked up, inside the process's root. Default
	// /opt/nvidia/deepstream/deepstream.
	InstallDir string `hcl:"install_dir,optional"`
	// MaxAttestationBytes bounds every byte one attestation reads from
	// /proc and from config files (hashing counts against time only).
	// Default 32 MiB, from 64 KiB to 1 GiB.
	MaxAttestationBytes int64 `hcl:"max_attestation_bytes,optional"`
	// AttestationTimeout bounds the time of one attestation, e.g. "5s".
	// Default 5s, from 100ms to 1m.
	AttestationTimeout string `hcl:"attestation_timeout,optional"`
}

// configuration is the validated Config with defaults applied.
type configuration struct {
	appNames        []string
	interpreters    []string
	scriptNames     []string
	libraryPrefixes []string
	childDepth      int
	hashModels      bool
	maxConfigBytes  int64
	maxExeBytes     int64
	maxModelBytes   int64
	installDir      string

	maxAttestationBytes int64
	attestationTimeout  time.Duration
}

// buildConfig builds the configuration of a Configure or Validate request.
func buildConfig(req pluginconf.Request) (*configuration, *pluginconf.Status) {
	return pluginconf.Build(req, new(Config))
}

// BuildConfig checks c and applies the defaults (see pluginconf.Builder),
// one area at a time, reporting every problem.
func (c *Config) BuildConfig(_ pluginconf.Core, s *pluginconf.Status) *configuration {
	out := &configuration{}
	c.buildNamePatterns(out, s)
	c.buildFileLimits(out, s)
	c.buildBudgets(out, s)
	c.buildLibraryMatch(out, s)
	c.buildInspection(out, s)
	return out
}

// buildNamePatterns checks the glob patterns that recognise an app by its
// executable or script name.
func (c *Config) buildNamePatterns(out *configuration, s *pluginconf.Status) {
	patterns := func(key string, list, def []string) []string {
		if list == nil {
			return def
		}
		for _, p := range list {
			if p == "" {
				s.ReportErrorf("%s: empty pattern", key)
			} else if _, err := path.Match(p, ""); err != nil {
				s.ReportErrorf("%s: bad pattern %q: %v", key, p, err)
			}
		}
		return list
	}
	out.appNames = patterns("app_names", c.AppNames, defaultAppNames)
	out.interpreters = patterns("interpreters", c.Interpreters, defaultInterpreters)
	out.scriptNames = patterns("script_names", c.ScriptNames, defaultScriptNames)
}

// buildFileLimits checks the size limits of the files one attestation reads
// or hashes.
func (c *Config) buildFileLimits(out *configuration, s *pluginconf.Status) {
	size := func(key string, v, def, max int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0 || v > max:
			s.ReportErrorf("%s: %d is out of range (1..%d)", key, v, max)
		}
		return v
	}
	out.maxConfigBytes = size("max_config_bytes", c.MaxConfigBytes, DefaultMaxConfigBytes, MaxMaxConfigBytes)
	out.maxExeBytes = size("max_exe_bytes", c.MaxExeBytes, DefaultMaxExeBytes, 1<<40)
	out.maxModelBytes = size("max_model_bytes", c.MaxModelBytes, DefaultMaxModelBytes, 1<<40)
}

// buildBudgets checks the byte and time budgets of one attestation.
func (c *Config) buildBudgets(out *configuration, s *pluginconf.Status) {
	out.maxAttestationBytes = DefaultMaxAttestationBytes
	if c.MaxAttestationBytes != 0 {
		if c.MaxAttestationBytes < MinMaxAttestationBytes || c.MaxAttestationBytes > MaxMaxAttestationBytes {
			s.ReportErrorf("max_attestation_bytes: %d is out of range (%d..%d)", c.MaxAttestationBytes, MinMaxAttestationBytes, MaxMaxAttestationBytes)
		}
		out.maxAttestationBytes = c.MaxAttestationBytes
	}
	out.attestationTimeout = s.Duration("attestation_timeout", c.AttestationTimeout, pluginconf.Duration{
		Default: DefaultAttestationTimeout,
		Min:     MinAttestationTimeout,
		Max:     MaxAttestationTimeout,
	})
}

// buildLibraryMatch checks the memory-map check: the library prefixes that
// mark a DeepStream app, unless the check is off.
func (c *Config) buildLibraryMatch(out *configuration, s *pluginconf.Status) {
	if c.DisableLibraryMatch {
		return
	}
	out.libraryPrefixes = defaultLibraryPrefixes
	if c.LibraryPrefixes != nil {
		out.libraryPrefixes = c.LibraryPrefixes
	}
	for _, p := range out.libraryPrefixes {
		if p == "" {
			s.ReportError("library_prefixes: empty prefix")
		}
	}
}

// buildInspection checks how far an attestation looks: the child depth,
// model hashing and the DeepStream install directory.
func (c *Config) buildInspection(out *configuration, s *pluginconf.Status) {
	out.childDepth = DefaultChildDepth
	if c.ChildDepth != nil {
		if *c.ChildDepth < 0 || *c.ChildDepth > MaxChildDepth {
			s.ReportErrorf("child_depth: %d is out of range (0..%d)", *c.ChildDepth, MaxChildDepth)
		}
		out.childDepth = *c.ChildDepth
	}
	out.hashModels = c.HashModels
	out.installDir = DefaultInstallDir
	if c.InstallDir != "" {
		if !path.IsAbs(c.InstallDir) {
			s.ReportErrorf("install_dir: %q is not an absolute path", c.InstallDir)
		}
		out.installDir = path.Clean(c.InstallDir)
	}
}

// hooks are the OS dependencies tests replace.
type hooks struct {
	// procDir is the proc filesystem, normally /proc.
	procDir string
	// cgroupRoot is where the cgroup hierarchies are mounted, normally
	// /sys/fs/cgroup: cgroup v2 there, or v1 hierarchies in its
	// subdirectories with v2 in "unified".
	cgroupRoot string
	// statfs returns the file system magic of a path; lstat the owner and
	// type of a cgroup directory.
	statfs func(path string) (int64, error)
	lstat  func(path string) (cgroupStat, error)
	// openPid identifies a process for the duration of an attestation
	// (a pidfd).
	openPid func(pid int) (pidHandle, error)
	// beforeRecheck, when set, runs after everything was read and before
	// the processes are rechecked: tests swap a process there.
	beforeRecheck func()
	// skipRecheck turns the recheck off, so that a test can show what it
	// prevents. Never set outside tests.
	skipRecheck bool
}

// Plugin is the deepstream WorkloadAttestor.
type Plugin struct {
	workloadattestorv1.UnsafeWorkloadAttestorServer
	configv1.UnsafeConfigServer

	mu     sync.RWMutex
	config *configuration

	log    hclog.Logger
	hashes *hashCache
	hooks  hooks
	// cgroupWarn makes the "cannot check cgroups" warning appear once.
	cgroupWarn sync.Once
}

// New returns an unconfigured plugin.
func New() *Plugin {
	return &Plugin{
		log:    hclog.NewNullLogger(),
		hashes: newHashCache(4096),
		hooks: hooks{
			procDir:    "/proc",
			cgroupRoot: DefaultCgroupRoot,
			statfs:     statfsType,
			lstat:      lstatCgroup,
			openPid:    openPidfd,
		},
	}
}

// SetLogger is called by the plugin framework with SPIRE's logger.
func (p *Plugin) SetLogger(log hclog.Logger) {
	p.log = log
}

// Configure validates and applies the configuration.
func (p *Plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	cfg, cfgStatus := buildConfig(req)
	if err := cfgStatus.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.config = cfg
	p.mu.Unlock()
	return &configv1.ConfigureResponse{}, nil
}

// Validate reports whether a configuration is acceptable, with every
// problem as a note.
func (p *Plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, cfgStatus := buildConfig(req)
	return cfgStatus.ValidateResponse(), nil
}

func (p *Plugin) getConfig() (*configuration, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.config == nil {
		return nil, status.Error(codes.FailedPrecondition, "not configured")
	}
	return p.config, nil
}

// Attest returns the deepstream selectors of the process pid, or of the
// DeepStream app it launched (see the package documentation for the trust
// model). A process that is not, and did not launch, a DeepStream app gets
// no selectors. An attestation that runs out of its byte or time budget
// fails with ResourceExhausted and returns no selectors.
func (p *Plugin) Attest(ctx context.Context, req *workloadattestorv1.AttestRequest) (*workloadattestorv1.AttestResponse, error) {
	cfg, err := p.getConfig()
	if err != nil {
		return nil, err
	}
	if req.Pid <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "invalid pid %d", req.Pid)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.attestationTimeout, errTimeBudget)
	defer cancel()
	a := &attestation{p: p, cfg: cfg, ctx: ctx, log: p.log.With("pid", req.Pid), bytesLeft: cfg.maxAttestationBytes}
	selectors, err := a.run(int(req.Pid))
	if err != nil {
		return nil, err
	}
	return &workloadattestorv1.AttestResponse{SelectorValues: selectors}, nil
}
