package vaultclient_test

import (
	"context"
	"fmt"
	"time"

	"github.com/edgeid/edgeid/plugins/common/vaultclient"
)

// Dial logs in with AppRole (IDs read from files) and keeps the token
// alive until Close.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := vaultclient.Dial(ctx, vaultclient.Config{
		Address:    "https://vault.example.org:8200",
		CACertPath: "/etc/edgeid/vault-ca.pem",
		Auth: &vaultclient.AppRoleAuth{
			RoleIDFile:   "/etc/edgeid/vault/role_id",
			SecretIDFile: "/etc/edgeid/vault/secret_id",
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	caps, err := c.CapabilitiesSelf(ctx, "pki_int/root/sign-intermediate")
	fmt.Println(caps, err)
}
