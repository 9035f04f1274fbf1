package pluginconf

import (
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

// Request is what Configure and Validate requests have in common.
type Request interface {
	GetCoreConfiguration() *configv1.CoreConfiguration
	GetHclConfiguration() string
}

// Core is the part of SPIRE's core configuration a plugin sees.
type Core struct {
	// TrustDomain is SPIRE's trust domain; zero when SPIRE sent none (or
	// a malformed one, which Build reports).
	TrustDomain spiffeid.TrustDomain

	// missing is the problem to report when a plugin requires the trust
	// domain and SPIRE sent none.
	missing string
}

// RequireTrustDomain reports a problem when SPIRE sent no trust domain.
// A malformed trust domain is reported by Build already, whether or not the
// plugin requires one.
func (c Core) RequireTrustDomain(s *Status) {
	if c.missing != "" {
		s.ReportError(c.missing)
	}
}

// Builder is a plugin's HCL configuration struct: Build decodes the
// plugin_data into it, then calls BuildConfig, which checks every key,
// reports each problem to s and returns the validated configuration C with
// defaults applied. BuildConfig should check everything before it returns,
// even after a problem; what it returns is discarded when s has an error.
type Builder[C any] interface {
	BuildConfig(core Core, s *Status) *C
}

// Build decodes req's HCL into hcl (a pointer to the plugin's HCL struct)
// and builds the plugin's configuration from it. The configuration is nil
// exactly when the returned Status has an error; the Status also carries
// the notes for Validate.
//
// Problems are reported in this order: a malformed trust domain, then the
// plugin's own. A syntax error or an unknown key stops Build before the
// plugin is asked (Status.Err then returns the error of Decode).
func Build[C any](req Request, hcl Builder[C]) (*C, *Status) {
	s := new(Status)
	if err := Decode(req.GetHclConfiguration(), hcl); err != nil {
		s.failed = err
		return nil, s
	}
	core := buildCore(req.GetCoreConfiguration().GetTrustDomain(), s)
	cfg := hcl.BuildConfig(core, s)
	if s.HasError() {
		return nil, s
	}
	return cfg, s
}

func buildCore(trustDomain string, s *Status) Core {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	switch {
	case err == nil:
		return Core{TrustDomain: td}
	case trustDomain == "":
		return Core{missing: trustDomainProblem(trustDomain, err)}
	default:
		s.ReportError(trustDomainProblem(trustDomain, err))
		return Core{}
	}
}

func trustDomainProblem(trustDomain string, err error) string {
	return fmt.Sprintf("trust domain %q from the core configuration is invalid: %v", trustDomain, err)
}
