// Command plain is the do-nothing baseline of the benchmark: x/net/webdav
// over webdav.Dir with its in-memory lock system, nothing else.
package main

import (
	"flag"
	"log"
	"net/http"

	"golang.org/x/net/webdav"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address")
	root := flag.String("root", ".", "directory")
	flag.Parse()
	h := &webdav.Handler{FileSystem: webdav.Dir(*root), LockSystem: webdav.NewMemLS()}
	log.Fatal(http.ListenAndServe(*addr, h))
}
