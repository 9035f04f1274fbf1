package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/quarantine"
	"github.com/edgeid/edgeid/helper/kafkagw/recordcrypt/vaultkms"
	"github.com/edgeid/edgeid/internal/cliutil"
	"github.com/edgeid/edgeid/internal/svidsource"
	"github.com/edgeid/edgeid/internal/vaultconn"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/twmb/franz-go/pkg/kgo"
)

var kafkaReproduceSummary = "Produce the records of a gateway's quarantine directory again, exactly as stored (still sealed: key, value, headers " +
	"with edgeid-enc, timestamp), each to its own topic and partition, with acks=all and an idempotent producer; each is marked " +
	"reproduced once acknowledged, so a second run produces nothing. Give the brokers (or a cloud-mode gateway), never an " +
	"encrypting edge gateway: it refuses records that already carry edgeid-enc. By default only records quarantined for " +
	strings.Join(quarantine.DefaultReasons(), ", ") + " are produced; tampered, forged or truncated ones would only be quarantined " +
	"again, and withheld plaintext (not_encrypted) would be written again in plaintext. Exit 1 if any record failed (it stays unmarked)."

const kafkaRewrapSummary = "Re-wrap, with Vault's transit/rewrap/<ring>, the data key in the edgeid-enc header of every quarantined record " +
	"not yet reproduced whose key ring version is below the ring's newest, replacing its headers.json atomically: the record " +
	"still opens, and the ring's min_decryption_version can then be raised. A second run changes nothing. Vault login: the " +
	"SVID given (--tls-cert/--tls-key or --workload-api, cert auth), else the token in VAULT_TOKEN (never printed). Exit 1 if any record failed."

// kafkaQuarantineFlags are the flags `edgeid kafka reproduce` and
// `edgeid kafka rewrap` share.
type kafkaQuarantineFlags struct {
	dir, topic string
	dryRun     bool
	timeout    time.Duration
}

func (f *kafkaQuarantineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.topic, "topic", "", "only this topic's records (default: every topic)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "list what would be done; change nothing")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "longest time for the whole run")
}

// parseQuarantineArgs parses flags given before and after the one
// argument, the quarantine directory.
func parseQuarantineArgs(fs *flag.FlagSet, help cliutil.Command, args []string, f *kafkaQuarantineFlags, stdout, stderr io.Writer) error {
	if err := cliutil.ParseArgs(fs, help, args, stdout, stderr); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return cliutil.Usagef(fs, help, stderr, "%s needs the quarantine directory", fs.Name())
	}
	f.dir = rest[0]
	if err := cliutil.Parse(fs, help, rest[1:], stdout, stderr); err != nil {
		return err
	}
	if err := (quarantine.Selection{Topic: f.topic}).Validate(); err != nil {
		return cliutil.Usagef(fs, help, stderr, "--topic: %v", err)
	}
	if _, err := os.Stat(f.dir); err != nil {
		return cliutil.Usagef(fs, help, stderr, "quarantine directory: %v", err)
	}
	return nil
}

// kafkaReproduceFlags are the flags of `edgeid kafka reproduce`.
type kafkaReproduceFlags struct {
	kafkaQuarantineFlags
	kafkaTLSFlags
	brokers, trustDomain, reasons string
}

func kafkaReproduceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	help := cliutil.Command{Usage: "edgeid kafka reproduce DIR --brokers HOST:PORT[,...] [--topic T] [--reasons R,...|all] [--dry-run] " +
		"[--trust-domain TD] [--tls-ca F --tls-cert F --tls-key F | --workload-api ADDR]", Summary: kafkaReproduceSummary}
	fs := flag.NewFlagSet("kafka reproduce", flag.ContinueOnError)
	var f kafkaReproduceFlags
	f.kafkaQuarantineFlags.register(fs)
	f.kafkaTLSFlags.register(fs)
	fs.StringVar(&f.brokers, "brokers", "", "bootstrap brokers (or a cloud-mode gateway), host:port[,host:port...]; not needed with --dry-run")
	fs.StringVar(&f.trustDomain, "trust-domain", "", "trust domain of the brokers' SVIDs (default: the client SVID's)")
	fs.StringVar(&f.reasons, "reasons", strings.Join(quarantine.DefaultReasons(), ","),
		"quarantine reasons to produce, comma-separated, or all (known: "+strings.Join(quarantine.Reasons(), ", ")+")")
	if err := parseQuarantineArgs(fs, help, args, &f.kafkaQuarantineFlags, stdout, stderr); err != nil {
		return err
	}
	sel := quarantine.Selection{Topic: f.topic, Reasons: strings.Split(f.reasons, ",")}
	if f.reasons == "all" {
		sel.Reasons = quarantine.Reasons()
	}
	if err := sel.Validate(); err != nil {
		return cliutil.Usagef(fs, help, stderr, "--reasons: %v", err)
	}
	if p := f.problem(); p != "" {
		return cliutil.Usagef(fs, help, stderr, "%s", p)
	}
	if f.brokers == "" && !f.dryRun {
		return cliutil.Usagef(fs, help, stderr, "kafka reproduce needs --brokers (or --dry-run)")
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return kafkaReproduce(ctx, f, sel, stdout)
}

func kafkaReproduce(ctx context.Context, f kafkaReproduceFlags, sel quarantine.Selection, stdout io.Writer) error {
	store, err := quarantine.Open(f.dir)
	if err != nil {
		return err
	}
	var p quarantine.Producer = dryRunProducer{}
	if !f.dryRun {
		tlsCfg, closeTLS, err := kafkaTLS(ctx, "kafka reproduce", f.kafkaTLSFlags, f.trustDomain)
		if err != nil {
			return err
		}
		defer closeTLS()
		opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(f.brokers, ",")...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchMaxBytes(64 << 20)}
		if tlsCfg != nil {
			opts = append(opts, kgo.DialTLSConfig(tlsCfg))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return fmt.Errorf("kafka reproduce: %w", err)
		}
		defer cl.Close()
		p = cl
	}
	sum, err := quarantine.Reproduce(ctx, store, p, sel, f.dryRun)
	if sum != nil {
		printOutcomes(stdout, sum, []string{actionName(f.dryRun, "produced", "would produce"), "skipped", "failed"})
	}
	if err != nil {
		return err
	}
	return sum.Err()
}

// dryRunProducer stands in for the client in a dry run, which produces
// nothing.
type dryRunProducer struct{}

func (dryRunProducer) Produce(context.Context, *kgo.Record, func(*kgo.Record, error)) {}
func (dryRunProducer) Flush(context.Context) error                                    { return nil }

// actionName is the action counted in the summary line.
func actionName(dryRun bool, done, would string) string {
	if dryRun {
		return would
	}
	return done
}

// printOutcomes writes one line per record (never its content) and a
// count per action.
func printOutcomes(w io.Writer, sum *quarantine.Summary, actions []string) {
	for _, o := range sum.Outcomes {
		line := fmt.Sprintf("%-13s %s", o.Action, o.ID)
		if o.Reason != "" {
			line += " (" + o.Reason + ")"
		}
		if o.Why != "" {
			line += ": " + o.Why
		}
		if o.Err != nil {
			line += ": " + o.Err.Error()
		}
		fmt.Fprintln(w, line)
	}
	var counts []string
	for _, a := range actions {
		counts = append(counts, fmt.Sprintf("%d %s", sum.Count(a), a))
	}
	fmt.Fprintf(w, "summary: %s\n", strings.Join(counts, ", "))
}

// kafkaRewrapFlags are the flags of `edgeid kafka rewrap`.
type kafkaRewrapFlags struct {
	kafkaQuarantineFlags
	vaultAddr, vaultCA, transitMount, certMount, certRole string
	certFile, keyFile, workloadAPI                        string
}

func kafkaRewrapCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	help := cliutil.Command{Usage: "edgeid kafka rewrap DIR --vault-addr URL [--vault-ca F] [--transit-mount transit] [--topic T] [--dry-run] " +
		"[--tls-cert F --tls-key F | --workload-api ADDR] [--cert-mount cert] [--cert-role R]", Summary: kafkaRewrapSummary}
	fs := flag.NewFlagSet("kafka rewrap", flag.ContinueOnError)
	var f kafkaRewrapFlags
	f.kafkaQuarantineFlags.register(fs)
	fs.StringVar(&f.vaultAddr, "vault-addr", os.Getenv("VAULT_ADDR"), "Vault's address (default $VAULT_ADDR)")
	fs.StringVar(&f.vaultCA, "vault-ca", os.Getenv("VAULT_CACERT"), "CA PEM of Vault's server certificate (default $VAULT_CACERT; the system roots when empty)")
	fs.StringVar(&f.transitMount, "transit-mount", "transit", "the Transit engine's mount")
	fs.StringVar(&f.certFile, "tls-cert", "", "SVID certificate chain PEM to log in with (cert auth); with --tls-key")
	fs.StringVar(&f.keyFile, "tls-key", "", "SVID key PEM")
	fs.StringVar(&f.workloadAPI, "workload-api", "", "log in with the SVID of this Workload API (unix:///path/to/agent.sock)")
	fs.StringVar(&f.certMount, "cert-mount", "cert", "the cert auth method's mount")
	fs.StringVar(&f.certRole, "cert-role", "", "cert auth role (default: the one Vault matches to the SVID)")
	if err := parseQuarantineArgs(fs, help, args, &f.kafkaQuarantineFlags, stdout, stderr); err != nil {
		return err
	}
	switch {
	case f.vaultAddr == "":
		return cliutil.Usagef(fs, help, stderr, "kafka rewrap needs --vault-addr (or VAULT_ADDR)")
	case (f.certFile == "") != (f.keyFile == "") || f.certFile != "" && f.workloadAPI != "":
		return cliutil.Usagef(fs, help, stderr, "give --tls-cert and --tls-key, or --workload-api, or neither (VAULT_TOKEN)")
	case f.certFile == "" && f.workloadAPI == "" && os.Getenv("VAULT_TOKEN") == "":
		return cliutil.Usagef(fs, help, stderr, "kafka rewrap needs a Vault login: VAULT_TOKEN in the environment, or an SVID (--tls-cert/--tls-key or --workload-api)")
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return kafkaRewrap(ctx, f, stdout)
}

func kafkaRewrap(ctx context.Context, f kafkaRewrapFlags, stdout io.Writer) error {
	store, err := quarantine.Open(f.dir)
	if err != nil {
		return err
	}
	cfg := vaultkms.Config{Vault: vaultconn.Config{Address: f.vaultAddr, CACertFile: f.vaultCA, Timeout: 30 * time.Second},
		TransitMount: f.transitMount, CertAuthMount: f.certMount, CertRole: f.certRole}
	switch {
	case f.workloadAPI != "":
		src, err := svidsource.New(ctx, f.workloadAPI, spiffeid.ID{}, 30*time.Second)
		if err != nil {
			return fmt.Errorf("kafka rewrap: workload API %s: %w", f.workloadAPI, err)
		}
		defer src.Close()
		cfg.SVID = src
	case f.certFile != "":
		svid, err := x509svid.Load(f.certFile, f.keyFile)
		if err != nil {
			return fmt.Errorf("kafka rewrap: %w", err)
		}
		cfg.SVID = svid
	default:
		cfg.Token = os.Getenv("VAULT_TOKEN")
	}
	kms, err := vaultkms.New(cfg)
	if err != nil {
		return fmt.Errorf("kafka rewrap: %w", err)
	}
	sum, err := quarantine.Rewrap(ctx, store, kms, quarantine.Selection{Topic: f.topic}, f.dryRun)
	if sum != nil {
		printOutcomes(stdout, sum, []string{actionName(f.dryRun, "rewrapped", "would rewrap"), "skipped", "failed"})
	}
	if err != nil {
		return err
	}
	return sum.Err()
}
