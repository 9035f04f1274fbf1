// Package vaultboot brings a Vault server to the state edgeid needs, and
// keeps it there: initialised with its key shares encrypted at rest,
// unsealed, a PKI root and an intermediate signed by it, a least-privilege
// policy and AppRole for the SPIRE server's vault_pki UpstreamAuthority, a
// file audit device and, optionally, Vault's own TLS certificate.
//
// Every step reads Vault's state first and does only what is missing, so a
// second run changes nothing and a run interrupted anywhere is finished by
// the next one. The root token a run needs comes from init on the first run
// and from the generate-root flow (one-time password plus key shares)
// afterwards; it is revoked before Run returns.
//
// Usage, from a file:
//
//	summary, err := vaultboot.RunFile(ctx, "conf/bootstrap.hcl", vaultboot.Options{Logger: logger})
//
// or step by step:
//
//	cfg, err := vaultboot.LoadFile("conf/bootstrap.hcl")
//	b, err := vaultboot.New(cfg, vaultboot.Options{Logger: logger})
//	summary, err := b.Run(ctx)
package vaultboot
