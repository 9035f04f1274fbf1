// Package gatewaybench measures the Kafka gateway (helper/kafkagw) in one
// run: produce throughput and p50/p99 produce latency with franz-go kgo
// against kfake, directly (plaintext and mTLS), through a bare TCP relay
// (the hop reference, mTLS end to end), through a cloud-mode gateway and
// through an edge-mode gateway; and the policy decision cost, cached and
// uncached, with a 1,000-rule policy; and record encryption
// (BenchmarkRecordEncryption): produce and consume through an edge gateway
// with and without an encrypt block, 1 KiB and 64 KiB records, every
// compression codec, with a real Vault doing Transit, and how much of its
// cost the bytes sealing adds to a record make (BenchmarkSealedRecordBytes).
//
//	go test -run '^$' -bench . -benchtime 1x -count 1 ./test/bench/gateway/
package gatewaybench
