// Command probe is the attack suite's stand-in for a local attacker: run as
// some uid, it tries to connect to Unix sockets and to read files, and
// prints one JSON line per attempt with the outcome (the errno name, or
// "ok"). It never prints what it read.
//
//	probe connect:/path/to/server.sock read:/path/to/key.pem ...
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Result is one attempt.
type Result struct {
	Op     string `json:"op"`
	Path   string `json:"path"`
	UID    int    `json:"uid"`
	Result string `json:"result"`
}

func main() {
	enc := json.NewEncoder(os.Stdout)
	for _, arg := range os.Args[1:] {
		op, path, ok := strings.Cut(arg, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "probe: %q is not op:path\n", arg)
			os.Exit(2)
		}
		var err error
		switch op {
		case "connect":
			var c net.Conn
			c, err = net.DialTimeout("unix", path, 2*time.Second)
			if err == nil {
				c.Close()
			}
		case "read":
			var f *os.File
			f, err = os.Open(path)
			if err == nil {
				buf := make([]byte, 1)
				_, err = f.Read(buf)
				f.Close()
			}
		default:
			fmt.Fprintf(os.Stderr, "probe: unknown op %q\n", op)
			os.Exit(2)
		}
		_ = enc.Encode(Result{Op: op, Path: path, UID: os.Getuid(), Result: outcome(err)})
	}
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EACCES:
			return "EACCES"
		case syscall.EPERM:
			return "EPERM"
		case syscall.ENOENT:
			return "ENOENT"
		case syscall.ECONNREFUSED:
			return "ECONNREFUSED"
		}
		return errno.Error()
	}
	return err.Error()
}
