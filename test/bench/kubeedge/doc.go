// Package kubeedgebench measures server-side kubeedge node attestation
// (payload parsing, chain verification, challenge, proof of possession,
// agent ID) next to an x509pop-equivalent baseline measured in the same run.
//
// Run with one core to get attestations per second per core:
//
//	go test -run '^$' -bench . -benchtime 3s -cpu 1 ./test/bench/kubeedge/
//
// See README.md in this folder for what the baseline is and is not.
package kubeedgebench
