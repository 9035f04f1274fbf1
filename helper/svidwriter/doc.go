// Package svidwriter turns an X.509 SVID and its trust bundles into the
// files a workload reads: the certificate chain, the PKCS#8 private key and
// the bundle exactly as spiffe-helper v0.11 writes them, plus a combined PEM
// (chain and key in one file, for ghostunnel --keystore) and PKCS#12
// keystore and truststore files (for ghostunnel and Java).
//
// It only builds the file contents; the caller publishes them together with
// an atomicdir.Writer.
package svidwriter
