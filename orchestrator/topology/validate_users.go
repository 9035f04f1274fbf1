package topology

import (
	"fmt"
	"strconv"

	"github.com/hashicorp/hcl/v2"
)

// Default accounts (see UsersBlock). Numeric uids need no passwd entry.
const (
	DefaultControlUID      = 61000
	DefaultKafkaDemoUID    = 61001
	DefaultKafkaGatewayUID = 61002
	DefaultWorkloadUIDBase = 61100
	// MinAccountUID keeps edgeid's processes off root and the system
	// accounts; MaxAccountUID below the 32-bit "nobody" values.
	MinAccountUID = 1000
	MaxAccountUID = 1 << 30
)

func (v *validator) users(ub *UsersBlock) Users {
	if ub == nil {
		ub = &UsersBlock{}
	}
	return Users{
		Control:      v.user(ub.Control, DefaultControlUID, ub.ControlRange, "users.control"),
		KafkaDemo:    v.user(ub.KafkaDemo, DefaultKafkaDemoUID, ub.KafkaDemoRange, "users.kafka_demo"),
		KafkaGateway: v.user(ub.KafkaGateway, DefaultKafkaGatewayUID, ub.KafkaGatewayRange, "users.kafka_gateway"),
	}
}

// user parses an account: a user name or a decimal uid.
func (v *validator) user(s string, def int, r hcl.Range, key string) User {
	if s == "" {
		return User{UID: def}
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < MinAccountUID || n > MaxAccountUID {
			v.errorf(r, "%s: uid %d is out of range (%d..%d): edgeid never runs a process as root or a system account", key, n, MinAccountUID, MaxAccountUID)
		}
		return User{UID: n}
	}
	if !validUserName(s) || s == "root" {
		v.errorf(r, "%s: %q is not a user name (lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 32) or a decimal uid", key, s)
	}
	return User{Name: s}
}

// distinctUsers checks that no two of the control plane, the demo broker
// and the workloads share an account: an account is what separates them.
func (v *validator) distinctUsers(top *Topology) {
	type owner struct {
		what string
		r    hcl.Range
	}
	seen := map[string]owner{}
	claim := func(u User, what string, r hcl.Range) {
		key := u.String()
		if prev, ok := seen[key]; ok {
			v.errorf(r, "%s runs as %s, like %s: every workload needs an account of its own", what, key, prev.what)
			return
		}
		seen[key] = owner{what, r}
	}
	claim(top.Users.Control, "the control plane (users.control)", rangeOr(v.usersRange(), v.fileRange()))
	if top.Kafka.Demo {
		claim(top.Users.KafkaDemo, "the demo Kafka broker (users.kafka_demo)", rangeOr(v.usersRange(), v.fileRange()))
		claim(top.Users.KafkaGateway, "the cloud Kafka gateway (users.kafka_gateway)", rangeOr(v.usersRange(), v.fileRange()))
	}
	for _, s := range top.Sites {
		for _, w := range s.Workloads {
			claim(w.User, fmt.Sprintf("workload %q of site %q", w.Name, s.Name), v.workloadRanges[s.Name+"/"+w.Name])
		}
	}
}

func (v *validator) usersRange() hcl.Range {
	if v.file.Users != nil {
		return v.file.Users.DefRange
	}
	return hcl.Range{}
}

// validUserName is the portable shape of a Unix user name (useradd's
// default NAME_REGEX, at most 32 characters).
func validUserName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case (c >= '0' && c <= '9' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
