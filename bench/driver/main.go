// Command driver runs msdav's side-by-side benchmark (make bench): it starts
// msdav, nginx (dav + dav_ext), Apache mod_dav, rclone serve webdav and plain
// x/net/webdav on loopback, measures them interleaved, and prints ratios.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	work      = flag.String("work", "/var/tmp/msdav-bench", "work directory (on the disk to measure)")
	msdav     = flag.String("msdav", "bin/msdav", "msdav binary")
	plain     = flag.String("plain", "bin/plain", "plain x/net/webdav binary")
	rounds    = flag.Int("rounds", 5, "rounds per measurement (medians are reported)")
	sizesFlag = flag.String("sizes", "", "comma-separated file sizes in MiB for PUT and GET (default 1024,4096; 64,256 quick)")
	raw       = flag.String("raw", "", "write every sample (row, server, wall, cpu) to this CSV `file` (default: samples.csv in -work)")
	profile   = flag.String("profile", "", "also write CPU profiles of msdav alone, one per operation, to this `directory`")
	quick     = flag.Bool("quick", os.Getenv("BENCH_QUICK") != "", "small sizes, for development")
	out       = flag.String("out", "BENCHMARKS.md", "where to write the report")
)

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true, WriteBufferSize: 256 << 10, ReadBufferSize: 256 << 10}}

func main() {
	flag.Parse()
	must(os.RemoveAll(*work))
	must(os.MkdirAll(*work, 0o755))
	defer stopAll()
	// Ctrl-C too stops the servers and puts page reporting back.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		stopAll()
		os.Exit(130)
	}()
	loadBefore := loadavg()
	reporting := pausePageReporting()
	fmt.Fprintln(os.Stderr, "bench: free page reporting:", reporting)
	var servers []*server
	servers = append(servers,
		startMsdav("msdav", filepath.Join(*work, "msdav"), false),
		startNginx(),
		startRclone(),
		startPlain(),
	)
	apache := startApache()
	servers = append(servers, apache)
	peers := servers[:4] // Apache only for PROPFIND, as in the issue

	sizes := []int64{1 << 30, 4 << 30}
	if *quick {
		sizes = []int64{64 << 20, 256 << 20}
	}
	if *sizesFlag != "" {
		sizes = nil
		for _, f := range strings.Split(*sizesFlag, ",") {
			mib, err := strconv.ParseInt(f, 10, 64)
			must(err)
			sizes = append(sizes, mib<<20)
		}
	}
	var report bytes.Buffer
	table := &results{}
	for _, size := range sizes {
		src := filepath.Join(*work, fmt.Sprintf("src-%d.bin", size))
		makeSource(src, size)
		label := human(size)
		// dd takes its turn in the rotation like a server: the disk's
		// state after the previous write weighs on whoever comes next.
		for r := 0; r < *rounds; r++ {
			for _, k := range order(len(peers)+1, r) {
				if k == len(peers) {
					table.add("PUT "+label+" + fsync", "dd conv=fsync", ddTime(src, filepath.Join(*work, "dd.out")))
				} else {
					table.measure("PUT "+label+" + fsync", peers[k], func() (time.Duration, time.Duration) { return putTime(peers[k], "big.bin", src, size) })
				}
			}
		}
		// Only the servers' copies stay, so "warm" is true for all of them.
		os.Remove(filepath.Join(*work, "dd.out"))
		os.Remove(src)
		rngs, n := ranges(size)
		for r := 0; r < *rounds; r++ {
			for _, k := range order(len(peers), r) {
				s := peers[k]
				warm(filepath.Join(s.root, "big.bin"))
				for k := 0; k < 3; k++ {
					table.measure("GET "+label+" (warm)", s, func() (time.Duration, time.Duration) { return getTime(s, "big.bin", "", size), 0 })
				}
				table.measure("GET "+label+" (warm), curl", s, func() (time.Duration, time.Duration) { return curlTime(s, "big.bin", "", size), 0 })
				// A ranged GET is short, so it is sampled several times
				// per round, at offsets spread over the file.
				for _, rng := range rngs {
					table.measure("GET "+label+" range "+human(n), s, func() (time.Duration, time.Duration) {
						return getTime(s, "big.bin", rng, n), 0
					})
				}
			}
		}
		for _, s := range peers {
			os.Remove(filepath.Join(s.root, "big.bin"))
		}
	}
	// PROPFIND Depth 1 of a folder with 10,000 entries.
	for _, s := range servers {
		makeFolder(filepath.Join(s.root, "many"))
	}
	time.Sleep(2 * time.Second) // rclone's directory cache (1s) forgets the old listing
	for _, s := range servers {
		propfindTime(s, "many/") // dentries and inodes in cache for everyone
	}
	for r := 0; r < 4**rounds; r++ {
		for _, k := range order(len(servers), r) {
			s := servers[k]
			table.measure("PROPFIND depth 1, 10,000 entries", s, func() (time.Duration, time.Duration) { return propfindTime(s, "many/"), 0 })
		}
	}
	cycles, small := smallWrites()
	// Two sizes, to show that memory does not follow the size of the image.
	rssSizes := []int64{256 << 20, 1 << 30}
	if *quick {
		rssSizes = []int64{32 << 20, 128 << 20}
	}
	var rss []string
	for _, size := range rssSizes {
		rss = append(rss, fmt.Sprintf("%s with four %s uploads", peakRSS(size), human(size)))
	}
	if *profile != "" {
		profiles(*profile)
	}

	fmt.Fprintf(&report, "# msdav benchmarks\n\nWritten by `make bench` (bench/driver) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&report, "Machine: %s. Work directory %s on %s. Load before the run: %s. Free page reporting: %s. %d rounds, medians; servers interleaved, each on loopback.\n\n",
		machine(), *work, fsType(*work), loadBefore, reporting, *rounds)
	report.WriteString(table.markdown())
	fmt.Fprintf(&report, "\nCPU time per request: the server process's user + system time (/proc, ticks of 10 ms), mean of the samples without the lowest and highest fifth; for PUT plus the client's fsync of what the server wrote, which is server work left to the client (msdav syncs before it answers):\n\n")
	report.WriteString(table.cpuMarkdown())
	fmt.Fprintf(&report, "\n## msdav alone\n\n")
	fmt.Fprintf(&report, "- 1,000 small PUTs (4 KiB, 4 clients) with `storage.remount = true` on a real tmpfs: %s, %s remount cycle(s).\n", small, cycles)
	fmt.Fprintf(&report, "- Peak RSS (VmHWM) of a fresh msdav during four concurrent uploads: %s.\n", strings.Join(rss, ", "))
	fmt.Fprintf(&report, "\nPUT times include an fsync of the written file by the client after the response, so every server is measured durable; msdav already fsynced before answering. msdav/nginx is the median of per-round ratios, msdav's time divided by nginx's measured next to it in the same round: below 1 is faster than nginx; the per-round column gives the lowest and highest of those ratios. GETs are preceded by a read of the file, so the page cache is warm for every server; the Go client reads into a 1 MiB buffer, curl as it does by default. Whole GETs are three per round and server, ranged GETs five, at offsets spread over the file. The order of the servers is shuffled in each round.\n")
	fmt.Print(report.String())
	must(os.WriteFile(*out, report.Bytes(), 0o644))
	if *raw == "" {
		*raw = filepath.Join(*work, "samples.csv")
	}
	table.writeRaw(*raw)
	fmt.Fprintln(os.Stderr, "bench: every sample in", *raw)
}
