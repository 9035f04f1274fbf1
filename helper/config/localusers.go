package config

import (
	"fmt"
	"math"
	"os"
	"os/user"
	"strconv"

	"github.com/edgeid/edgeid/helper/internal/localpeer"
)

// localUsers builds the guard of a loopback listener that speaks upstream
// with this workload's identity (a client tunnel, a kafka_gateway): only
// connections whose socket belongs to an account of "local_users" (names
// or uids; the helper's own account by default) are carried. With
// "allow_any_local_user" every local account is, as before the check.
func (v *validator) localUsers(s *spans, where string, users []string, anyUser bool) *localpeer.Guard {
	if anyUser {
		if len(users) > 0 {
			v.errorf(s.at("allow_any_local_user"), "%s: \"local_users\" and \"allow_any_local_user\" exclude each other", where)
		}
		return nil
	}
	var uids []uint32
	if len(users) == 0 {
		uids = append(uids, uint32(os.Getuid()))
	}
	for _, u := range users {
		uid, err := lookupUID(u)
		if err != nil {
			v.errorf(s.at("local_users"), "%s: \"local_users\": %v", where, err)
			continue
		}
		uids = append(uids, uid)
	}
	g, err := localpeer.NewGuard(uids)
	if err != nil {
		return nil // each entry was reported above
	}
	return g
}

// lookupUID resolves a user name on this host, or takes a decimal uid.
func lookupUID(name string) (uint32, error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil && n < math.MaxUint32 {
		return uint32(n), nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("%q is neither a uid nor a user of this host", name)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %q has uid %q: %w", name, u.Uid, err)
	}
	return uint32(n), nil
}
