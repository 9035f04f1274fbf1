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
	Host string
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

// StartPostgres initialises a fresh cluster and starts it on 127.0.0.1. As
// root it runs the server as the "postgres" user, since PostgreSQL refuses
// root.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	return StartPostgresIn(t, nil, "")
}

// StartPostgresIn starts PostgreSQL inside host's namespace of network
// net, listening on the host's address (or on 127.0.0.1 when net is nil).
func StartPostgresIn(t testing.TB, network *Network, host string) *Postgres {
	t.Helper()
	initdb := postgresBin(t, "initdb")
	server := postgresBin(t, "postgres")
	psql := RequireCommand(t, "psql")

	dir, err := os.MkdirTemp("", "eid-pg")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cred := postgresCredential(t, dir)
	pg := &Postgres{Port: FreePort(t), Dir: dir}
	listen := "127.0.0.1"
	// in wraps a command so that it runs in the host's namespace.
	in := func(bin string, args ...string) (string, []string) { return bin, args }
	if network != nil {
		h := network.Hosts[host]
		listen = h.IP
		in = func(bin string, args ...string) (string, []string) {
			return "ip", append([]string{"netns", "exec", h.NS, bin}, args...)
		}
	}
	data := filepath.Join(dir, "data")

	cmd := exec.Command(initdb, "-D", data, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = CleanEnv(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: initdb: %v\n%s", err, out)
	}
	if network != nil {
		// initdb trusts loopback only; trust the private test subnet too.
		hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		fmt.Fprintf(hba, "host all all %s0/24 trust\n", NetworkSubnet)
		if err := hba.Close(); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	t.Logf("harness: starting real postgres on %s:%d (%s)", listen, pg.Port, server)
	serverArgs := []string{"-D", data, "-p", itoa(pg.Port), "-k", dir,
		"-c", "listen_addresses=" + listen, "-c", "fsync=off"}
	spec := ProcessSpec{Name: "postgres", Bin: server, Args: serverArgs, Dir: dir, Credential: cred}
	if network != nil {
		// ip netns exec needs root; runuser then drops to postgres.
		spec.Credential = nil
		spec.Bin, spec.Args = in(RequireCommand(t, "runuser"), append([]string{"-u", "postgres", "--", server}, serverArgs...)...)
	}
	pg.Proc = StartProcess(t, spec)
	env := append(CleanEnv(dir), "PGCONNECT_TIMEOUT=2")
	sql := func(db, stmt string) error {
		bin, args := in(psql, "-h", listen, "-p", itoa(pg.Port), "-U", "postgres", "-d", db, "-c", stmt)
		_, err := runCommand(bin, env, args...)
		return err
	}
	Eventually(t, 30*time.Second, func() error {
		if exited, werr := pg.Proc.Exited(); exited {
			return fmt.Errorf("postgres exited: %v", werr)
		}
		return sql("postgres", "select 1")
	})
	if err := sql("postgres", "create database spire"); err != nil {
		t.Fatalf("harness: create database: %v", err)
	}
	pg.Host = listen
	pg.DSN = fmt.Sprintf("dbname=spire user=postgres host=%s port=%d sslmode=disable", listen, pg.Port)
	return pg
}

// postgresCredential is the postgres account when the tests run as root
// (PostgreSQL refuses to run as root), which then owns dir; nil otherwise.
func postgresCredential(t testing.TB, dir string) *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("harness: running as root needs the postgres user to run PostgreSQL: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}
