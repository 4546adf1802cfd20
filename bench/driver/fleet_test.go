package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCountCalls(t *testing.T) {
	in := `12 openat(5, "distro-01", O_RDONLY|O_CLOEXEC) = 7
12 getdents64(7, 0xc000 /* 52 entries */, 8192) = 2480
13 newfstatat(7, "image-000.img", {st_mode=S_IFREG|0644, st_size=4096, ...}, AT_SYMLINK_NOFOLLOW) = 0
12 getdents64(7 <unfinished ...>
14 statfs("/var/tmp/x", {f_type=EXT2_SUPER_MAGIC, ...}) = 0
12 <... getdents64 resumed>0xc000 /* 0 entries */, 8192) = 0
13 newfstatat(AT_FDCWD, "/nope", 0xc000, 0) = -1 ENOENT (No such file or directory)
12 +++ exited with 0 +++
`
	c, err := countCalls(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := fleetCalls{listings: 1, getdents: 2, opens: 1, stats: 2, statfs: 1}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
}

// MSDAV_FLEET_BENCH=path/to/msdav go test ./bench/driver -run TestFleetCost -v
// runs the fleet row alone against that binary (root, strace).
func TestFleetCost(t *testing.T) {
	bin := os.Getenv("MSDAV_FLEET_BENCH")
	if bin == "" {
		t.Skip("MSDAV_FLEET_BENCH=binary runs the fleet row alone")
	}
	c, err := fleetCost(bin, 60)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(c.line())
}

// MSDAV_PUT_AB=path/to/msdav go test ./bench/driver -run TestPutMethods -v
// times a synced 1 GiB PUT to msdav and nginx by the bench's method and by
// an A/B run's (root, nginx-extras), in its own work directory.
func TestPutMethods(t *testing.T) {
	bin := os.Getenv("MSDAV_PUT_AB")
	if bin == "" {
		t.Skip("MSDAV_PUT_AB=binary compares the PUT methods")
	}
	*work = "/var/tmp/msdav-put-ab"
	*msdav = bin
	if err := cleanWork(*work); err != nil {
		t.Fatal(err)
	}
	if err := makeCert(*work); err != nil {
		t.Fatal(err)
	}
	defer stopAll()
	ms := startMsdav("msdav", filepath.Join(*work, "msdav"), msdavOpts{})
	ng, _ := startNginx()
	t.Log("\n" + comparePutMethods(ms, ng, 1<<30, 5))
}
