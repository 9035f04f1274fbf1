package harness

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Postgres is a real PostgreSQL server in a temporary directory, listening
// on 127.0.0.1 with trust authentication, for SPIRE's HA datastore tests.
type Postgres struct {
	Port int
	// DSN connects to the database "spire" as user "postgres", in the
	// key=value form SPIRE's sql DataStore takes.
	DSN  string
	Dir  string
	Proc *Process
}

// postgresBin finds a PostgreSQL server program (initdb, postgres) on the
// PATH or in Debian's versioned directory.
func postgresBin(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	matches, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql", "*", "bin", name))
	if len(matches) > 0 {
		return matches[len(matches)-1]
	}
	t.Fatalf("harness: PostgreSQL's %s is not installed: run `make deps` (scripts/install-deps.sh) to install postgresql", name)
	return ""
}

// StartPostgres initialises a fresh cluster and starts it. As root it runs
// the server as the "postgres" user, since PostgreSQL refuses root.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	initdb := postgresBin(t, "initdb")
	server := postgresBin(t, "postgres")
	psql := RequireCommand(t, "psql")

	dir, err := os.MkdirTemp("", "eid-pg")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("harness: running as root needs the postgres user to run PostgreSQL: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	pg := &Postgres{Port: FreePort(t), Dir: dir}
	data := filepath.Join(dir, "data")

	cmd := exec.Command(initdb, "-D", data, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = CleanEnv(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: initdb: %v\n%s", err, out)
	}
	t.Logf("harness: starting real postgres on 127.0.0.1:%d (%s)", pg.Port, server)
	pg.Proc = StartProcess(t, ProcessSpec{
		Name: "postgres",
		Bin:  server,
		Args: []string{"-D", data, "-p", itoa(pg.Port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"},
		Dir:        dir,
		Credential: cred,
	})
	env := append(CleanEnv(dir), "PGCONNECT_TIMEOUT=2")
	Eventually(t, 30*time.Second, func() error {
		if exited, werr := pg.Proc.Exited(); exited {
			return fmt.Errorf("postgres exited: %v", werr)
		}
		_, err := runCommand(psql, env, "-h", "127.0.0.1", "-p", itoa(pg.Port), "-U", "postgres", "-d", "postgres", "-c", "select 1")
		return err
	})
	if _, err := runCommand(psql, env, "-h", "127.0.0.1", "-p", itoa(pg.Port), "-U", "postgres", "-d", "postgres", "-c", "create database spire"); err != nil {
		t.Fatalf("harness: create database: %v", err)
	}
	pg.DSN = fmt.Sprintf("dbname=spire user=postgres host=127.0.0.1 port=%d sslmode=disable", pg.Port)
	return pg
}
