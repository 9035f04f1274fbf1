package atomicdir_test

import (
	"fmt"
	"log"
	"os"

	"github.com/edgeid/edgeid/helper/atomicdir"
)

func Example() {
	dir, err := os.MkdirTemp("", "certs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	w, err := atomicdir.New(dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, version := range []string{"one", "two"} {
		_, err := w.Write([]atomicdir.File{
			{Name: "svid.pem", Data: []byte("cert " + version), Mode: 0o644},
			{Name: "svid_key.pem", Data: []byte("key " + version), Mode: 0o600},
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := w.Settle(); err != nil {
			log.Fatal(err)
		}
	}
	// Read both files from one version.
	files, err := atomicdir.Snapshot(dir, "svid.pem", "svid_key.pem")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(files["svid.pem"]), "/", string(files["svid_key.pem"]))
	// Output: cert two / key two
}
