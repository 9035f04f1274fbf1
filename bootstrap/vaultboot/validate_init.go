package vaultboot

import (
	"fmt"
	"strings"
)

// init checks the init block: the key shares and how they are kept.
func (v *validator) init(b *InitBlock) {
	sharesKey := v.initShares(b)
	c := v.c
	if c.autoUnseal {
		c.sharesDir = v.inState(b.SharesDir, "recovery")
	} else {
		c.sharesDir = v.inState(b.SharesDir, "unseal")
	}
	v.initEncryption(b, sharesKey)
}

// initShares sets the number of shares and the threshold: recovery shares
// for a Vault that unseals itself, unseal shares otherwise. It returns the
// key that holds the number of shares.
func (v *validator) initShares(b *InitBlock) (sharesKey string) {
	c := v.c
	sharesKey, thresholdKey := "init.secret_shares", "init.secret_threshold"
	c.shares, c.threshold = b.SecretShares, b.SecretThreshold
	if c.autoUnseal {
		// A Vault that unseals itself has recovery shares only; Vault
		// refuses secret_shares for it.
		sharesKey, thresholdKey = "init.recovery_shares", "init.recovery_threshold"
		c.shares, c.threshold = b.RecoveryShares, b.RecoveryThreshold
		v.refuseSet("Vault unseals itself (auto_unseal block), so it has recovery shares, not unseal shares: set init.recovery_shares and init.recovery_threshold instead",
			keyInt{"init.secret_shares", b.SecretShares}, keyInt{"init.secret_threshold", b.SecretThreshold})
	} else {
		v.refuseSet("only with an auto_unseal block: a Vault with a Shamir seal has unseal shares (init.secret_shares and init.secret_threshold)",
			keyInt{"init.recovery_shares", b.RecoveryShares}, keyInt{"init.recovery_threshold", b.RecoveryThreshold})
	}
	if c.shares == 0 {
		c.shares = 5
	}
	if c.threshold == 0 {
		c.threshold = min(3, c.shares)
	}
	if c.shares < 1 || c.shares > 255 {
		v.p.add(sharesKey, "must be between 1 and 255, got %d", c.shares)
	}
	if c.threshold < 1 || c.threshold > c.shares || (c.shares > 1 && c.threshold < 2) {
		v.p.add(thresholdKey, "must be between 2 and %s (%d) (1 only with a single share), got %d", strings.TrimPrefix(sharesKey, "init."), c.shares, c.threshold)
	}
	return sharesKey
}

type keyInt struct {
	key string
	v   int
}

// refuseSet reports message for each key that is set.
func (v *validator) refuseSet(message string, keys ...keyInt) {
	for _, kv := range keys {
		if kv.v != 0 {
			v.p.add(kv.key, "%s", message)
		}
	}
}

// initEncryption checks that exactly one way of keeping the shares is
// chosen, and its keys.
func (v *validator) initEncryption(b *InitBlock, sharesKey string) {
	c := v.c
	modes := 0
	if len(b.AgeRecipients) > 0 {
		modes++
		c.encryption = encAge
	}
	if len(b.PGPKeyFiles) > 0 {
		modes++
		c.encryption = encPGP
	}
	if b.InsecurePlaintextShares {
		modes++
		c.encryption = encPlaintext
	}
	if modes != 1 {
		v.p.add("init", "set exactly one of age_recipients, pgp_key_files or insecure_plaintext_shares = true (found %d)", modes)
	}
	c.ageRecipients = b.AgeRecipients
	switch b.AgeRecipientMode {
	case "", "per_share":
		c.agePerShare = true
		if len(b.AgeRecipients) > 0 && len(b.AgeRecipients) != c.shares {
			v.p.add("init.age_recipients", "per_share mode needs one recipient per share: %d recipients for %d shares (%s; or set age_recipient_mode = \"all\")", len(b.AgeRecipients), c.shares, sharesKey)
		}
	case "all":
	default:
		v.p.add("init.age_recipient_mode", "must be \"per_share\" or \"all\", got %q", b.AgeRecipientMode)
	}
	for i, r := range b.AgeRecipients {
		if _, err := parseAgeRecipient(r); err != nil {
			v.p.add(fmt.Sprintf("init.age_recipients[%d]", i), "%v", err)
		}
	}
	for _, f := range b.PGPKeyFiles {
		c.pgpKeyFiles = append(c.pgpKeyFiles, v.abs(f))
	}
	if len(b.PGPKeyFiles) > 0 && len(b.PGPKeyFiles) != c.shares {
		v.p.add("init.pgp_key_files", "Vault needs one PGP key per share: %d keys for %d shares (%s)", len(b.PGPKeyFiles), c.shares, sharesKey)
	}
}
