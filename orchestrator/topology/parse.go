package topology

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/edgeid/edgeid/internal/hcldiag"
	"github.com/hashicorp/hcl/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxFileBytes bounds the size of a topology file.
const MaxFileBytes = 4 << 20

// NestingFactor is how many times longer an upstream CA must live than
// what it signs. SPIRE prepares the next CA at half-life and activates it
// when 1/6 of the lifetime remains, so anything shorter than 6× leaves the
// downstream with a CA or SVID that outlives its issuer's active window.
const NestingFactor = 6

// Defaults applied to omitted keys.
const (
	DefaultCloudCATTL   = 7 * 24 * time.Hour
	DefaultCloudSVIDTTL = time.Hour
	DefaultSiteCATTL    = 24 * time.Hour
	DefaultSiteSVIDTTL  = time.Hour
	DefaultServerPort   = 8081
	DefaultKafkaPort    = 9093
	DefaultCluster      = "kubeedge"
)

// Kinds of workload.
const (
	KindDeepStream = "deepstream"
	KindEdgeHub    = "edgehub"
	KindEventBus   = "eventbus"
	KindApp        = "app"
)

// Error is one problem in a topology file, at a place in it.
type Error = hcldiag.Problem

// Errors is every problem found in a topology file, in file order.
type Errors []Error

func (es Errors) Error() string { return hcldiag.Format("topology", es) }

// ParseFile reads and validates the topology file at path.
func ParseFile(path string) (*Topology, error) {
	src, err := hcldiag.ReadFile("topology", path, MaxFileBytes)
	if err != nil {
		return nil, err
	}
	return Parse(src, path)
}

// Parse validates the topology in src; filename names it in errors and
// relative paths in it resolve against its directory.
func Parse(src []byte, filename string) (*Topology, error) {
	var f File
	problems, err := hcldiag.Decode("topology", src, filename, MaxFileBytes, &f)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, Errors(problems)
	}
	v := &validator{file: &f, filename: filename, workloadRanges: map[string]hcl.Range{}}
	top := v.validate(filename)
	if len(v.errs) > 0 {
		slices.SortStableFunc(v.errs, func(a, b Error) int {
			return a.Range.Start.Byte - b.Range.Start.Byte
		})
		return nil, v.errs
	}
	return top, nil
}

type validator struct {
	file *File
	errs Errors
	// ports maps "host:port" to where it was first claimed.
	ports map[string]portUse
	// filename is the file being validated.
	filename string
	// workloadUIDBase and workloadCount number the workloads' default
	// accounts; workloadRanges locate each workload ("site/name") for
	// account errors.
	workloadUIDBase int
	workloadCount   int
	workloadRanges  map[string]hcl.Range
}

type portUse struct {
	what string
	at   hcl.Range
}

func (v *validator) errorf(r hcl.Range, format string, args ...any) {
	v.errs = append(v.errs, Error{Range: r, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) duration(s string, def time.Duration, r hcl.Range, key string) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		v.errorf(r, "%s: %q is not a positive duration such as \"24h\"", key, s)
		return def
	}
	return d
}

func (v *validator) claimPort(host string, port int, what string, r hcl.Range) {
	if v.ports == nil {
		v.ports = map[string]portUse{}
	}
	if port < 1 || port > 65535 {
		v.errorf(r, "%s: port %d is out of range", what, port)
		return
	}
	key := host + ":" + strconv.Itoa(port)
	if prev, ok := v.ports[key]; ok {
		v.errorf(r, "port clash: %s and %s both use port %d on host %q (%s)", what, prev.what, port, host, rangeString(prev.at))
		return
	}
	v.ports[key] = portUse{what: what, at: r}
}

func rangeString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d,%d", r.Filename, r.Start.Line, r.Start.Column)
}

func (v *validator) nested(upstream, downstream time.Duration, upWhat, downWhat string, r hcl.Range) {
	if upstream < NestingFactor*downstream {
		v.errorf(r, "TTLs break nesting: %s (%s) must be at least %d × %s (%s), i.e. %s; SPIRE activates a new CA when 1/6 of its life remains",
			upWhat, upstream, NestingFactor, downWhat, downstream, NestingFactor*downstream)
	}
}

func (v *validator) validate(filename string) *Topology {
	f := v.file
	abs, err := filepath.Abs(filename)
	if err != nil {
		abs = filename
	}
	top := &Topology{Path: abs, Dir: filepath.Dir(abs)}

	if td, err := spiffeid.TrustDomainFromString(f.TrustDomain); err != nil {
		v.errorf(f.TrustDomainRange, "trust_domain: %v", err)
	} else {
		top.TrustDomain = td.Name()
	}

	top.Cloud = v.cloud(f.Cloud)
	top.Vault = v.vault(f.Vault, top.Cloud)
	top.KubeEdge = v.kubeedge(f.KubeEdge, top.Dir)
	top.Kafka = v.kafka(f.Kafka, top)
	top.Users = v.users(f.Users)
	top.Observability = v.observability(f.Observability)
	v.workloadUIDBase = DefaultWorkloadUIDBase
	if f.Users != nil && f.Users.WorkloadUIDBase != nil {
		v.workloadUIDBase = *f.Users.WorkloadUIDBase
		if v.workloadUIDBase < MinAccountUID || v.workloadUIDBase > MaxAccountUID {
			v.errorf(f.Users.WorkloadUIDBaseRange, "users.workload_uid_base %d is out of range (%d..%d)", v.workloadUIDBase, MinAccountUID, MaxAccountUID)
		}
	}

	sites := map[string]hcl.Range{}
	nodes := map[string]hcl.Range{}
	for _, sb := range f.Sites {
		if prev, ok := sites[sb.Name]; ok {
			v.errorf(sb.NameRange, "duplicate site %q (first defined at %s)", sb.Name, rangeString(prev))
			continue
		}
		sites[sb.Name] = sb.NameRange
		top.Sites = append(top.Sites, v.site(sb, top, nodes))
	}
	if len(f.Sites) == 0 {
		v.errorf(hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}, "no site blocks: a topology needs at least one edge site")
	}
	v.distinctUsers(top)
	v.statusEndpoint(f.Observability, top)
	for _, tb := range f.Tunnels {
		top.Tunnels = append(top.Tunnels, v.tunnel(tb, top))
	}
	seenTunnel := map[string]hcl.Range{}
	for _, tb := range f.Tunnels {
		if prev, ok := seenTunnel[tb.Name]; ok {
			v.errorf(tb.NameRange, "duplicate tunnel %q (first defined at %s)", tb.Name, rangeString(prev))
		}
		seenTunnel[tb.Name] = tb.NameRange
	}
	return top
}

func (v *validator) fileRange() hcl.Range {
	return hcl.Range{Filename: v.filename, Start: hcl.InitialPos, End: hcl.InitialPos}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// ErrNotFound is returned by lookups for a name the topology lacks.
var ErrNotFound = errors.New("topology: not found")

// Site returns the site with the given name.
func (t *Topology) Site(name string) (*Site, error) {
	for i := range t.Sites {
		if t.Sites[i].Name == name {
			return &t.Sites[i], nil
		}
	}
	return nil, fmt.Errorf("%w: site %q", ErrNotFound, name)
}

// rangeOr returns r, or fallback when r is unset (an omitted attribute).
func rangeOr(r, fallback hcl.Range) hcl.Range {
	if r.Filename == "" {
		return fallback
	}
	return r
}
