// Package helperbench measures edgeid-helper next to spiffe-helper v0.11.0
// against the same real SPIRE agent, and the built-in tunnel next to a
// direct Go TLS connection:
//
//   - rotation latency: from the agent's push of a new SVID (seen by a
//     Workload API watcher in this process) to the new certificate being
//     visible on disk, and to the renew signal reaching the program the
//     helper runs; p50/p99/max for each helper;
//   - RSS of each helper process, idle between rotations;
//   - torn reads (BenchmarkTornRead): spiffe-helper and edgeid-helper on
//     one agent at once, across a bounded number of rotations of a 30 s
//     SVID, each read in a tight loop by a reader that opens the
//     certificate file, then the key file, and counts torn reads
//     (unparsable) and mismatched ones (valid, but not a pair); and
//     edgeid's one-version readers (..data resolved once with
//     atomicdir.Snapshot, and the combined PEM), which must see neither;
//   - tunnel throughput (a 128 MiB stream) and 1 KiB request/response
//     latency, for a direct TLS connection, through a server-mode tunnel, a
//     client-mode tunnel and a client + server pair, against a backend that
//     runs as a process of its own; the paths take turns for several rounds
//     and each figure is the median of the rounds, with its range. A
//     reference path sends the direct TLS connection through a plain TCP
//     relay (spliced by the kernel): the cost of the extra loopback hop
//     alone, which no tunnel can avoid.
//
// Run with:
//
//	go test -run '^$' -bench . -benchtime 1x ./test/bench/helper/
//
// Each benchmark runs its measurement once (it takes tens of seconds) and
// prints a table; the numbers also go out as custom benchmark metrics.
package helperbench
