//go:build linux

package holdexec_test

import (
	"fmt"
	"os/exec"

	"github.com/edgeid/edgeid/helper/holdexec"
)

// Start an app held at exec, do the work it depends on, then let it run.
func ExampleStart() {
	cmd := exec.Command("echo", "pipeline running")
	out := new(stringsBuilder)
	cmd.Stdout = out
	held, err := holdexec.Start(cmd)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Here edgeid-helper fetches the SVID for held.Pid() and writes its
	// files. On failure it would call held.Kill() instead.
	if err := held.Release(); err != nil {
		fmt.Println(err)
		return
	}
	if err := cmd.Wait(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(out.s)
	// Output: pipeline running
}

type stringsBuilder struct{ s string }

func (b *stringsBuilder) Write(p []byte) (int, error) { b.s += string(p); return len(p), nil }
