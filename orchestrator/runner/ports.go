package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/edgeid/edgeid/internal/fsutil"
)

// portBook allocates loopback ports for an embedded run and remembers them
// in the run directory, so a re-run of `up` finds its processes where it
// left them.
type portBook struct {
	path  string
	ports map[string]int
	used  map[int]bool
}

func loadPorts(path string) (*portBook, error) {
	b := &portBook{path: path, ports: map[string]int{}, used: map[int]bool{}}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err == nil {
		if err := json.Unmarshal(data, &b.ports); err != nil {
			return nil, fmt.Errorf("runner: %s is corrupt: %w (remove it with `edgeid down --purge`)", path, err)
		}
	}
	for _, p := range b.ports {
		b.used[p] = true
	}
	return b, nil
}

// port returns the remembered port of host/key, or a free loopback port.
func (b *portBook) port(host, key string, _ int) int {
	k := host + "/" + key
	if p, ok := b.ports[k]; ok {
		return p
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(fmt.Sprintf("runner: no free loopback port: %v", err))
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// Vault needs the next port too (its cluster address).
		if b.used[p] || b.used[p+1] || (key == "vault" && !free(p+1)) {
			continue
		}
		b.used[p], b.ports[k] = true, p
		if key == "vault" {
			b.used[p+1] = true
		}
		return p
	}
}

func free(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func (b *portBook) save() error {
	// encoding/json writes map keys sorted, so the file is stable.
	data, err := json.MarshalIndent(b.ports, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomicMkdir(b.path, data, 0o644, fsutil.Keep)
}
