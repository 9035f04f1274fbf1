package kubeedgeca_test

import (
	"fmt"
	"os"

	"github.com/edgeid/edgeid/internal/kubeedgeca"
)

// Play cloudcore and edgecore: a KubeEdge CA, and a node that joins and
// gets its files in edgecore's layout.
func Example() {
	ca, err := kubeedgeca.New(kubeedgeca.Options{})
	if err != nil {
		panic(err)
	}
	root, err := os.MkdirTemp("", "etc-kubeedge-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)

	creds, layout, err := ca.JoinNode(root, "edge-node-1", kubeedgeca.SignOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println(creds.Certificate.Subject)
	fmt.Println(creds.Certificate.Issuer)
	fi, _ := os.Stat(layout.PrivateKeyPath)
	fmt.Println(fi.Mode().Perm())
	// Output:
	// CN=system:node:edge-node-1,O=system:nodes
	// CN=KubeEdge
	// -rw-------
}
