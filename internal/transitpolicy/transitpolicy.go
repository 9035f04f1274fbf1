// Package transitpolicy writes the Vault policies of record encryption:
// what an identity that produces to, consumes from, or re-wraps the data
// keys of one Transit key ring may do. The gateway's Vault client
// (helper/kafkagw/recordcrypt/vaultkms) is written against them, and
// edgeid bootstrap (bootstrap/vaultboot) grants them.
package transitpolicy

import "fmt"

// Producer is the Vault policy (HCL) of an identity that produces to
// topics of ring: it may get new data keys, and nothing else — not even
// decrypt them again.
func Producer(transitMount, ring string) string {
	return fmt.Sprintf("path %q {\n  capabilities = [\"update\"]\n}\n", orTransit(transitMount)+"/datakey/plaintext/"+ring)
}

// Consumer is the Vault policy (HCL) of an identity that consumes
// topics of ring: it may unwrap data keys, and nothing else.
func Consumer(transitMount, ring string) string {
	return fmt.Sprintf("path %q {\n  capabilities = [\"update\"]\n}\n", orTransit(transitMount)+"/decrypt/"+ring)
}

// Rewrap is the Vault policy (HCL) of an operator identity that
// re-wraps the data keys of ring's quarantined records (edgeid kafka
// rewrap): Vault unwraps and wraps again inside, so this identity never
// sees a data key and may not decrypt one.
func Rewrap(transitMount, ring string) string {
	return fmt.Sprintf("path %q {\n  capabilities = [\"update\"]\n}\n", orTransit(transitMount)+"/rewrap/"+ring)
}

func orTransit(m string) string {
	if m == "" {
		return "transit"
	}
	return m
}
