// Command nfsd serves one folder over NFSv3 inside the test VM, so the
// fleet tests mount a real NFS library with PiKVM's options. Its NFS and
// MOUNT programs share one TCP port, so no rpcbind is needed. Stopped and
// started again on the same folder, it answers the handles it gave before.
package main

import (
	"flag"
	"log"
	"net"

	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/helpers"
)

func main() {
	dir := flag.String("dir", "/export", "folder to serve")
	addr := flag.String("listen", "127.0.0.1:2049", "address for NFS and MOUNT")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("nfsd: serving %s on %s", *dir, ln.Addr())
	// File handles are inode numbers (handles.go): a restarted server
	// knows the handles its clients hold, as a real NAS does.
	fs := osfs.New(*dir)
	log.Fatal(nfs.Serve(ln, newStableHandles(helpers.NewNullAuthHandler(fs), fs)))
}
