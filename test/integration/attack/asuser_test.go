package attack

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// Uids the suite runs processes as. They need no passwd entries. The victim
// workload and the attacker never share one.
const (
	victimUID   = 64101
	attackerUID = 64199
)

// asUser makes cmd run as uid (with gid = uid and no supplementary groups),
// in its own process group so that cleanup reaches what it starts.
func asUser(cmd *exec.Cmd, uid int) *exec.Cmd {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
	cmd.SysProcAttr.Setpgid = true
	return cmd
}

// requireRoot fails (never skips) a test that needs root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the attack suite needs root: it runs processes as other uids")
	}
}
