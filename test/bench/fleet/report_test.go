package fleet

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func mib(kib int64) string { return fmt.Sprintf("%.0f", float64(kib)/1024) }

// complete marks a phase that did not finish every node.
func complete(res Result, n int) string {
	if res.Ops == n {
		return ""
	}
	return fmt.Sprintf(" (%d/%d)", res.Ops, n)
}

// printRows prints the cases as two markdown tables: the headline figures,
// then the CPU cost of first attestation.
func printRows(rows []row, header bool) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| N\t datastore\t plugin\t round\t attest all\t att/s\t att p99\t renew offered/s\t renew/s\t renew p99\t CPU % srv+plugin\t RSS MiB srv+plugin\t storm all re-attested\t storm first ok\t storm retries\t failed att/renew\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "| %d\t %s\t %s\t %d\t %s%s\t %.0f\t %s\t %.2f\t %.2f%s\t %s\t %.0f+%.0f\t %s+%s\t %s%s\t %s\t %d\t %d/%d\t\n",
			r.n, r.ds, r.plugin, r.round,
			dur(r.attest.Elapsed), complete(r.attest, r.n), r.attest.PerSecond(), dur(r.attest.Percentile(0.99)),
			r.rate, r.renew.PerSecond(), dropped(r.renew), dur(r.renew.Percentile(0.99)),
			r.renewUse.ServerCPU, r.renewUse.PluginCPU, mib(r.renewUse.ServerRSSKiB), mib(r.renewUse.PluginRSSKiB),
			dur(r.storm.Elapsed), complete(r.storm, r.attest.Ops), dur(r.storm.FirstOK),
			r.storm.Failures, r.attest.Failures, r.renew.Failures)
	}
	tw.Flush()
	if !header {
		return
	}
	fmt.Println("\nfleet: CPU during first attestation (CPU % is of one core; ms are CPU milliseconds per attestation)")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| N\t datastore\t plugin\t round\t server CPU %\t plugin CPU %\t PostgreSQL CPU %\t server ms/att\t plugin ms/att\t PostgreSQL ms/att\t load generator ms/att\t renew: PostgreSQL CPU %\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rows {
		per := func(d time.Duration) string {
			if r.attest.Ops == 0 {
				return "-"
			}
			return ms(d / time.Duration(r.attest.Ops))
		}
		fmt.Fprintf(tw, "| %d\t %s\t %s\t %d\t %.0f\t %.0f\t %.0f\t %s\t %s\t %s\t %s\t %.1f\t\n", r.n, r.ds, r.plugin, r.round,
			r.attestUse.ServerCPU, r.attestUse.PluginCPU, r.attestDB.TotalCPU(),
			per(r.attestUse.ServerCPUTime), per(r.attestUse.PluginCPUTime),
			per(r.attestDB.ServerCPUTime+r.attestDB.PluginCPUTime), per(r.genCPU), r.renewDB.TotalCPU())
	}
	tw.Flush()
}

func dropped(res Result) string {
	if res.Dropped == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d dropped)", res.Dropped)
}

// printComparison prints kubeedge against x509pop for each size and
// datastore, as the median over the rounds: wall time of first attestation
// and of the storm, and CPU per attestation (server + plugin), which a
// busy shared machine distorts less than wall time.
func printComparison(rows []row) {
	fmt.Println("\nfleet: kubeedge against x509pop, median over the rounds (target: within 10 %)")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| N\t datastore\t rounds\t attest time kubeedge/x509pop\t storm time kubeedge/x509pop\t CPU per attestation kubeedge/x509pop\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t")
	type key struct {
		n  int
		ds string
	}
	var order []key
	groups := map[key]map[string][]row{}
	for _, r := range rows {
		k := key{r.n, r.ds}
		if groups[k] == nil {
			groups[k] = map[string][]row{}
			order = append(order, k)
		}
		groups[k][r.plugin] = append(groups[k][r.plugin], r)
	}
	attest := func(r row) float64 { return r.attest.Elapsed.Seconds() }
	storm := func(r row) float64 { return r.storm.Elapsed.Seconds() }
	cpu := func(r row) float64 {
		if r.attest.Ops == 0 {
			return 0
		}
		return (r.attestUse.ServerCPUTime + r.attestUse.PluginCPUTime).Seconds() / float64(r.attest.Ops)
	}
	for _, k := range order {
		x, ke := groups[k][(X509PoP{}).Type()], groups[k][(KubeEdge{}).Type()]
		cmp := func(f func(row) float64) string { return ratio(median(ke, f), median(x, f)) }
		fmt.Fprintf(tw, "| %d\t %s\t %d\t %s\t %s\t %s\t\n", k.n, k.ds, min(len(x), len(ke)), cmp(attest), cmp(storm), cmp(cpu))
	}
	tw.Flush()
}

// median of f over rows (the mean of the middle two for an even count).
func median(rows []row, f func(row) float64) float64 {
	if len(rows) == 0 {
		return 0
	}
	v := make([]float64, len(rows))
	for i, r := range rows {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f (%+.0f %%)", a/b, 100*(a/b-1))
}

// printProfile prints where the server's CPU went during one profiled
// first attestation.
func printProfile(r row, seconds int) {
	fmt.Printf("\nfleet: spire-server CPU profile, first attestation, N=%d, %s, %s (%d s from the start; %s)\n", r.n, r.ds, r.plugin, seconds, r.profile)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| samples whose stack includes\t share\t")
	fmt.Fprintln(tw, "|---\t---\t")
	for i, c := range Categories {
		if i < len(r.profileShares) {
			fmt.Fprintf(tw, "| %s\t %.1f %%\t\n", c.Name, r.profileShares[i])
		}
	}
	tw.Flush()
	if r.profileTopText != "" {
		fmt.Println(indent(r.profileTopText))
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
