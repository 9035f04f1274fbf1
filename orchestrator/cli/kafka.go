package cli

import (
	"context"
	"crypto/tls"

	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/aclsync"
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/svidsource"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const kafkaACLsSummary = "Push the gateway policy to a Kafka cluster as User:spiffe://… ACLs (for brokers with a SPIFFE principal builder). " +
	"Prints the diff first (+ create, - delete, = unchanged, ! actors no ACL can express); plan changes nothing, apply converges. " +
	"Only ACLs of User:spiffe://<trust domain>/… principals are deleted; every other ACL is left alone. " +
	"Without TLS flags the brokers are reached in plaintext; with them, by SPIFFE mTLS (the brokers' SVIDs must be of the trust domain)."

// kafkaTLSFlags are the SPIFFE mTLS flags of every `edgeid kafka`
// command that reaches brokers: files or the Workload API, or neither
// (plaintext).
type kafkaTLSFlags struct {
	caFile, certFile, keyFile string
	workloadAPI               string
}

func (f *kafkaTLSFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.caFile, "tls-ca", "", "trust bundle PEM; with --tls-cert and --tls-key: SPIFFE mTLS from files")
	fs.StringVar(&f.certFile, "tls-cert", "", "client SVID certificate chain PEM")
	fs.StringVar(&f.keyFile, "tls-key", "", "client SVID key PEM")
	fs.StringVar(&f.workloadAPI, "workload-api", "", "SPIFFE mTLS with the SVID of this Workload API (unix:///path/to/agent.sock)")
}

// problem says what is wrong with the combination given, "" for nothing.
func (f *kafkaTLSFlags) problem() string {
	files := f.caFile != "" || f.certFile != "" || f.keyFile != ""
	if files && (f.caFile == "" || f.certFile == "" || f.keyFile == "") || files && f.workloadAPI != "" {
		return "give all of --tls-ca, --tls-cert and --tls-key, or --workload-api, or neither"
	}
	return ""
}

// kafkaACLsFlags are the flags of `edgeid kafka acls plan|apply`.
type kafkaACLsFlags struct {
	policy, brokers, trustDomain string
	kafkaTLSFlags
	timeout time.Duration
}

func (f *kafkaACLsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.policy, "policy", "", "gateway policy file (HCL)")
	fs.StringVar(&f.brokers, "brokers", "", "bootstrap brokers, host:port[,host:port...]")
	fs.StringVar(&f.trustDomain, "trust-domain", "", "trust domain whose principals are managed (default: the one the policy names)")
	f.kafkaTLSFlags.register(fs)
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "longest time for the whole run")
}

// kafkaCmd is `edgeid kafka acls plan|apply`, `edgeid kafka reproduce`
// and `edgeid kafka rewrap`.
func kafkaCmd(ctx context.Context, cmd command, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && cliutil.IsHelpArg(args[0]) {
		cliutil.PrintHelp(stdout, nil, cmd.help)
		return cliutil.ErrHelp
	}
	if len(args) > 0 && args[0] == "reproduce" {
		return kafkaReproduceCmd(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "rewrap" {
		return kafkaRewrapCmd(ctx, args[1:], stdout, stderr)
	}
	if len(args) < 2 || args[0] != "acls" || (args[1] != "plan" && args[1] != "apply") {
		return cliutil.Usagef(nil, cmd.help, stderr, "want `kafka acls plan|apply`, `kafka reproduce DIR` or `kafka rewrap DIR`, got %q", strings.Join(args, " "))
	}
	verb := args[1]
	help := cliutil.Command{Usage: "edgeid kafka acls " + verb + " --policy FILE --brokers HOST:PORT[,...] [--trust-domain TD] [--tls-ca F --tls-cert F --tls-key F | --workload-api ADDR]",
		Summary: kafkaACLsSummary}
	fs := flag.NewFlagSet("kafka acls "+verb, flag.ContinueOnError)
	var f kafkaACLsFlags
	f.register(fs)
	if err := cliutil.Parse(fs, help, args[2:], stdout, stderr); err != nil {
		return err
	}
	if f.policy == "" || f.brokers == "" {
		return cliutil.Usagef(fs, help, stderr, "kafka acls %s needs --policy and --brokers", verb)
	}
	if p := f.problem(); p != "" {
		return cliutil.Usagef(fs, help, stderr, "%s", p)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return kafkaACLs(ctx, f, verb == "apply", stdout)
}

func kafkaACLs(ctx context.Context, f kafkaACLsFlags, apply bool, stdout io.Writer) error {
	set, err := policy.ParseFile(f.policy)
	if err != nil {
		return err
	}
	td := f.trustDomain
	if td == "" {
		if td, err = aclsync.TrustDomain(set); err != nil {
			return fmt.Errorf("%w (--trust-domain)", err)
		}
	}
	tlsCfg, closeTLS, err := kafkaTLS(ctx, "kafka acls", f.kafkaTLSFlags, td)
	if err != nil {
		return err
	}
	defer closeTLS()
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(f.brokers, ",")...)}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka acls: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	have, err := aclsync.Fetch(ctx, adm)
	if err != nil {
		return err
	}
	plan := aclsync.Compute(set, td, have)
	plan.Write(stdout)
	if !apply {
		return nil
	}
	if err := aclsync.Apply(ctx, adm, plan); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied: %d created, %d deleted\n", len(plan.Create), len(plan.Delete))
	return nil
}

// kafkaTLS builds SPIFFE mTLS from files or the Workload API; nil means
// plaintext. The brokers must present an SVID of trust domain td, or of
// the client SVID's own trust domain when td is empty.
func kafkaTLS(ctx context.Context, what string, f kafkaTLSFlags, td string) (*tls.Config, func(), error) {
	noop := func() {}
	if td != "" {
		if _, err := spiffeid.TrustDomainFromString(td); err != nil {
			return nil, noop, fmt.Errorf("%s: trust domain: %w", what, err)
		}
	}
	var svid x509svid.Source
	var bundle x509bundle.Source
	closeFn := noop
	switch {
	case f.workloadAPI != "":
		src, err := svidsource.New(ctx, f.workloadAPI, spiffeid.ID{}, 30*time.Second)
		if err != nil {
			return nil, noop, fmt.Errorf("%s: workload API %s: %w", what, f.workloadAPI, err)
		}
		svid, bundle, closeFn = src, src, src.Close
	case f.certFile != "":
		s, err := x509svid.Load(f.certFile, f.keyFile)
		if err != nil {
			return nil, noop, fmt.Errorf("%s: %w", what, err)
		}
		svid = s
	default:
		return nil, noop, nil
	}
	trust, err := kafkaTrustDomain(svid, td)
	if err != nil {
		closeFn()
		return nil, noop, fmt.Errorf("%s: trust domain: %w", what, err)
	}
	if bundle == nil {
		if bundle, err = x509bundle.Load(trust, f.caFile); err != nil {
			return nil, noop, fmt.Errorf("%s: %w", what, err)
		}
	}
	return tlsconfig.MTLSClientConfig(svid, bundle, tlsconfig.AuthorizeMemberOf(trust)), closeFn, nil
}

// kafkaTrustDomain is td, or the trust domain of svid's SPIFFE ID.
func kafkaTrustDomain(svid x509svid.Source, td string) (spiffeid.TrustDomain, error) {
	if td != "" {
		return spiffeid.TrustDomainFromString(td)
	}
	s, err := svid.GetX509SVID()
	if err != nil {
		return spiffeid.TrustDomain{}, err
	}
	return s.ID.TrustDomain(), nil
}
