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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	work      = flag.String("work", "/var/tmp/msdav-bench", "work directory (on the disk to measure); its cache folder is kept across runs")
	msdav     = flag.String("msdav", "bin/msdav", "msdav binary")
	plain     = flag.String("plain", "bin/plain", "plain x/net/webdav binary")
	rounds    = flag.Int("rounds", 5, "rounds per measurement (medians are reported)")
	sizesFlag = flag.String("sizes", "", "comma-separated file sizes in MiB for PUT and GET (default 1024,4096; 64,256 quick)")
	raw       = flag.String("raw", "", "write every sample (row, server, wall, cpu) to this CSV `file` (default: samples.csv in -work)")
	profile   = flag.String("profile", "", "also write CPU profiles of msdav alone, one per operation, to this `directory`")
	vmRead    = flag.Bool("vmread", true, "boot the test VM to read through both drive backends side by side (needs qemu, as make vmtest)")
	quick     = flag.Bool("quick", os.Getenv("BENCH_QUICK") != "", "small sizes, for development")
	out       = flag.String("out", "BENCHMARKS.md", "where to write the report")
	vmlog     = flag.String("vmlog", "", "a log `file` of make vmtest whose attach-to-visible latencies the report cites")
)

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true, WriteBufferSize: 256 << 10, ReadBufferSize: 256 << 10}}

// Targets from issue 15, msdav/peer.
const (
	tlsTarget      = 1.1
	propfindTarget = 1.0
	fetchTarget    = 1.1
	zstdTarget     = 1.2
	xzTarget       = 2.0
	rssTargetMiB   = 64
)

// bench is one run: its servers, and what it measured so far.
type bench struct {
	msdav, nginx       *server   // plain HTTP
	msdavTLS, nginxTLS *server   // HTTPS, same certificate
	peers              []*server // PUT and GET: msdav, nginx, rclone, plain
	all                []*server // PROPFIND: the peers and Apache
	table              *results  // the servers side by side
	tools              *results  // msdav against a command-line tool
	alone              []string  // lines of "msdav alone"
	errs               []string  // failures outside the tables
	loadBefore         string
	reporting          string
}

func main() {
	flag.Parse()
	b := setup()
	defer stopAll()
	b.transfers()
	b.tlsRows()
	b.propfindRows()
	b.fetchRows()
	b.aloneRows()
	b.fleetRow()
	b.browserRows()
	if *profile != "" {
		profiles(*profile)
	}
	failed := b.report()
	stopAll()
	if failed {
		fmt.Fprintln(os.Stderr, "bench: some requests failed; see the report's Failures")
		os.Exit(1)
	}
}

// size picks the full or the quick size of a row.
func size(full, small int64) int64 {
	if *quick {
		return small
	}
	return full
}

// setup empties the work directory (but its cache), pauses page
// reporting, makes the certificate and starts every server.
func setup() *bench {
	must(cleanWork(*work))
	// Ctrl-C too stops the servers and puts page reporting back.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		stopAll()
		os.Exit(130)
	}()
	b := &bench{table: &results{}, tools: &results{}, loadBefore: loadavg()}
	b.reporting = pausePageReporting()
	fmt.Fprintln(os.Stderr, "bench: free page reporting:", b.reporting)
	must(makeCert(*work))
	b.msdav = startMsdav("msdav", filepath.Join(*work, "msdav"), msdavOpts{})
	b.msdavTLS = startMsdav("msdav-tls", filepath.Join(*work, "msdav-tls"), msdavOpts{tls: true})
	b.nginx, b.nginxTLS = startNginx()
	b.peers = []*server{b.msdav, b.nginx, startRclone(), startPlain()}
	b.all = append(b.peers, startApache()) // Apache only for PROPFIND, as in the issue
	return b
}

// cleanWork empties dir but for its cache folder, whose archives take
// minutes to make.
func cleanWork(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == "cache" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func transferSizes() []int64 {
	if *sizesFlag == "" {
		return []int64{size(1<<30, 64<<20), size(4<<30, 256<<20)}
	}
	var sizes []int64
	for _, f := range strings.Split(*sizesFlag, ",") {
		mib, err := strconv.ParseInt(f, 10, 64)
		must(err)
		sizes = append(sizes, mib<<20)
	}
	return sizes
}

// transfers are the PUT and GET rows over plain HTTP, Go's client and curl.
func (b *bench) transfers() {
	peers, table := b.peers, b.table
	for _, size := range transferSizes() {
		src := filepath.Join(*work, fmt.Sprintf("src-%d.bin", size))
		makeSource(src, size)
		label := human(size)
		// dd takes its turn in the rotation like a server: the disk's
		// state after the previous write weighs on whoever comes next.
		for r := 0; r < *rounds; r++ {
			for _, k := range order(len(peers)+1, r) {
				row := "PUT " + label + " + fsync"
				if k == len(peers) {
					if d, err := ddTime(src, filepath.Join(*work, "dd.out")); err != nil {
						table.fail(row, "dd conv=fsync", err)
					} else {
						table.add(row, "dd conv=fsync", d)
					}
				} else {
					table.measure(row, peers[k], func() (time.Duration, time.Duration, error) { return putTime(peers[k], "big.bin", src, size) })
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
					table.measure("GET "+label+" (warm)", s, noCharge(func() (time.Duration, error) { return getTime(s, "big.bin", "", size) }))
				}
				table.measure("GET "+label+" (warm), curl", s, noCharge(func() (time.Duration, error) { return curlTime(s, "big.bin", "", size) }))
				// A ranged GET is short, so it is sampled several times
				// per round, at offsets spread over the file.
				for _, rng := range rngs {
					table.measure("GET "+label+" range "+human(n), s, noCharge(func() (time.Duration, error) { return getTime(s, "big.bin", rng, n) }))
				}
			}
		}
		for _, s := range peers {
			os.Remove(filepath.Join(s.root, "big.bin"))
		}
	}
}

// noCharge adapts a request the server does all the work of.
func noCharge(f func() (time.Duration, error)) func() (time.Duration, time.Duration, error) {
	return func() (time.Duration, time.Duration, error) {
		d, err := f()
		return d, 0, err
	}
}

// tlsRows are PUT and GET by curl over TLS 1.3, msdav against nginx on the
// same certificate: the configuration the README recommends.
func (b *bench) tlsRows() {
	size := size(1<<30, 64<<20)
	src := filepath.Join(*work, "src-tls.bin")
	makeSource(src, size)
	defer os.Remove(src)
	label := human(size)
	put, get := "TLS PUT "+label+" + fsync, curl", "TLS GET "+label+" (warm), curl"
	b.table.compare(put, "nginx", tlsTarget)
	b.table.compare(get, "nginx", tlsTarget)
	servers := []*server{b.msdavTLS, b.nginxTLS}
	for r := 0; r < *rounds; r++ {
		for _, k := range order(len(servers), r) {
			s := servers[k]
			b.table.measure(put, s, func() (time.Duration, time.Duration, error) { return curlPutTime(s, "tls.bin", src, size) })
		}
	}
	for r := 0; r < *rounds; r++ {
		for _, k := range order(len(servers), r) {
			s := servers[k]
			if _, err := os.Stat(filepath.Join(s.root, "tls.bin")); err != nil {
				b.table.fail(get, s.name, fmt.Errorf("nothing to GET: the TLS PUT left no file (%v)", err))
				continue
			}
			warm(filepath.Join(s.root, "tls.bin"))
			for k := 0; k < 3; k++ {
				b.table.measure(get, s, noCharge(func() (time.Duration, error) { return curlTime(s, "tls.bin", "", size) }))
			}
		}
	}
	for _, s := range servers {
		os.Remove(filepath.Join(s.root, "tls.bin"))
	}
}

// propfindRows list a folder of 10,000 files (named properties and
// allprop) and a folder of 2,000 subfolders, at Depth 1, on every server.
func (b *bench) propfindRows() {
	for _, s := range b.all {
		makeFolder(filepath.Join(s.root, "many"))
		makeFolders(filepath.Join(s.root, "folders"), 2000)
	}
	time.Sleep(2 * time.Second) // rclone's directory cache (1s) forgets the old listing
	rows := []struct {
		row, dir, body, prefix string
		want                   int
		target                 float64
	}{
		{"PROPFIND depth 1, 10,000 entries", "many/", namedProps, "image-", 10000, propfindTarget},
		{"PROPFIND depth 1, 10,000 entries, allprop", "many/", allProp, "image-", 10000, 0},
		{"PROPFIND depth 1, 2,000 subfolders", "folders/", namedProps, "distro-", 2000, propfindTarget},
	}
	for _, row := range rows {
		b.table.compare(row.row, "nginx", row.target)
		for _, s := range b.all {
			propfindTime(s, row.dir, row.body, row.prefix, row.want) // dentries and inodes in cache for everyone
		}
		for r := 0; r < 4**rounds; r++ {
			for _, k := range order(len(b.all), r) {
				s := b.all[k]
				b.table.measure(row.row, s, noCharge(func() (time.Duration, error) {
					return propfindTime(s, row.dir, row.body, row.prefix, row.want)
				}))
			}
		}
	}
}

// fetchRows have msdav fetch an image from nginx on loopback, as is and
// compressed, against curl (and curl | xz -dc, curl | zstd -dc) writing the
// same bytes to the same disk, synced.
func (b *bench) fetchRows() {
	size := size(1<<30, 64<<20)
	img, xz, zst, err := cachedImage(filepath.Join(*work, "cache"), size)
	if err != nil {
		b.errs = append(b.errs, "fetch rows not measured: "+err.Error())
		return
	}
	dir := filepath.Join(b.nginx.root, "fetch")
	must(os.MkdirAll(dir, 0o755))
	outDir := filepath.Join(*work, "tool-out")
	must(os.MkdirAll(outDir, 0o755))
	defer os.RemoveAll(outDir)
	defer os.RemoveAll(dir)
	label := human(size)
	rows := []struct {
		row, src, decompress, peer, pipeline string
		target                               float64
	}{
		{"Fetch " + label + " over loopback", img, "none", "curl -o", "curl -sS --fail -o %[2]s %[1]s", fetchTarget},
		{"Fetch " + label + ", zstd -3, unpacked", zst, "auto", "curl | zstd -dc", "curl -sS --fail %[1]s | zstd -dc > %[2]s", zstdTarget},
		{"Fetch " + label + ", xz -T0 -3, unpacked", xz, "auto", "curl | xz -dc", "curl -sS --fail %[1]s | xz -dc > %[2]s", xzTarget},
	}
	for _, row := range rows {
		// A hard link: nginx serves the cached archive without a copy.
		name := filepath.Base(row.src)
		must(os.Link(row.src, filepath.Join(dir, name)))
		warm(row.src) // the source in the page cache for both: the disk is timed on the writing side
		url := b.nginx.url + "fetch/" + name
		out := filepath.Join(outDir, "fetched.img")
		b.tools.compare(row.row, row.peer, row.target)
		for r := 0; r < *rounds; r++ {
			for _, k := range order(2, r) {
				if k == 0 {
					b.tools.measure(row.row, b.msdav, noCharge(func() (time.Duration, error) {
						return fetchTime(b.msdav, url, "fetched.img", row.decompress, size)
					}))
					continue
				}
				if d, c, err := toolTime(fmt.Sprintf(row.pipeline, url, out), out, size); err != nil {
					b.tools.fail(row.row, row.peer, err)
				} else {
					b.tools.sample(row.row, row.peer, d, c)
				}
			}
		}
		davDelete(b.msdav, "fetched.img")
	}
}

// aloneRows are msdav's own figures: small writes with the remount guard,
// and peak memory during concurrent uploads, plain and over TLS.
func (b *bench) aloneRows() {
	if line, err := smallWrites(); err != nil {
		b.errs = append(b.errs, "small PUTs: "+err.Error())
		b.alone = append(b.alone, "1,000 small PUTs (4 KiB, 4 clients) with `storage.remount = true` on a real tmpfs: failed.")
	} else {
		b.alone = append(b.alone, "1,000 small PUTs (4 KiB, 4 clients) with `storage.remount = true` on a real tmpfs: "+line+".")
	}
	// Two sizes, to show that memory does not follow the size of the image.
	var rss []string
	for _, size := range []int64{size(256<<20, 32<<20), size(1<<30, 128<<20)} {
		if mib, err := peakRSS(size, false); err != nil {
			b.errs = append(b.errs, fmt.Sprintf("peak RSS, four %s uploads: %v", human(size), err))
			rss = append(rss, fmt.Sprintf("failed with four %s uploads", human(size)))
		} else {
			rss = append(rss, fmt.Sprintf("%.1f MiB with four %s uploads", mib, human(size)))
		}
	}
	b.alone = append(b.alone, "Peak RSS (VmHWM) of a fresh msdav during four concurrent uploads: "+strings.Join(rss, ", ")+".")
	tlsSize := size(256<<20, 32<<20)
	if mib, err := peakRSS(tlsSize, true); err != nil {
		b.errs = append(b.errs, fmt.Sprintf("peak RSS, four TLS uploads: %v", err))
		b.alone = append(b.alone, "Peak RSS during four concurrent TLS uploads: failed.")
	} else {
		b.alone = append(b.alone, fmt.Sprintf("Peak RSS (VmHWM) of a fresh msdav during four concurrent TLS uploads of %s (Go's client): %.1f MiB (target < %d MiB: %s).",
			human(tlsSize), mib, rssTargetMiB, map[bool]string{true: "met", false: "**missed**"}[mib < rssTargetMiB]))
	}
	hostileSize := size(64<<20, 16<<20)
	if mib, locks, err := hostileRSS(hostileSize); err != nil {
		b.errs = append(b.errs, fmt.Sprintf("peak RSS under hostile load: %v", err))
		b.alone = append(b.alone, fmt.Sprintf("Peak RSS under hostile load: failed (%.1f MiB when it did).", mib))
	} else {
		b.alone = append(b.alone, fmt.Sprintf("Peak RSS (VmHWM) of a fresh msdav while four zstd bombs (--long=31, refused), 3,000 shared LOCKs with 100 KB owners (%s), 1,000 event streams and 1,000 half-open connections hit it, next to four %s uploads that landed whole: %.1f MiB (target < %d MiB: %s).",
			locks, human(hostileSize), mib, hostileTargetMiB, map[bool]string{true: "met", false: "**missed**"}[mib < hostileTargetMiB]))
	}
	if *vmlog != "" {
		if line, err := vmLine(*vmlog); err != nil {
			b.errs = append(b.errs, err.Error())
		} else {
			b.alone = append(b.alone, line)
		}
	}
	// The drive backends side by side in a VM: not at quick sizes (CI's
	// make vmtest measures the same in its own boot).
	if *vmRead && !*quick {
		if line, err := runVMThroughput(); err != nil {
			b.errs = append(b.errs, err.Error())
			b.alone = append(b.alone, "Userspace drive against f_mass_storage in the VM: failed.")
		} else {
			b.alone = append(b.alone, line)
		}
	}
}

var serverCols = []string{"msdav", "nginx", "apache", "rclone", "plain"}

// report prints and writes the report, and every sample to the CSV. It
// says whether anything failed.
func (b *bench) report() bool {
	var report bytes.Buffer
	fmt.Fprintf(&report, "# msdav benchmarks\n\nWritten by `make bench` (bench/driver) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&report, "Machine: %s. Work directory %s on %s. Load before the run: %s. Free page reporting: %s. %d rounds, medians; servers interleaved, each on loopback.\n\n",
		machine(), *work, fsType(*work), b.loadBefore, b.reporting, *rounds)
	report.WriteString(b.table.markdown(append(slices.Clone(serverCols), "dd conv=fsync")))
	fmt.Fprintf(&report, "\nCPU time per request: the server process's user + system time (/proc, ticks of 10 ms), mean of the samples without the lowest and highest fifth; for PUT plus the client's fsync of what the server wrote, which is server work left to the client (msdav syncs before it answers):\n\n")
	report.WriteString(b.table.cpuMarkdown(serverCols))
	fmt.Fprintf(&report, "\n## msdav against the tools\n\nmsdav/peer as above, the tool in msdav's place in the same round. msdav fetching from nginx on loopback (POST /api/images/fetch, polling /api/jobs/{id} until done; the image is fsynced and its sha256 computed before the job is done) against curl writing the same bytes into the same disk, then an fsync; compressed images are unpacked by msdav (`decompress: auto`) and by `xz -dc` or `zstd -dc` after curl. The image is a stand-in for an OS image (a quarter zeros, a quarter random, half text), compressed once with `xz -T0 -3` and `zstd -3` and kept in %s. The console row uploads with the console's own code in headless Chromium. CPU: msdav's process, and the tool's pipeline with its fsync; in the console row both are msdav's, under the page and under curl:\n\n", filepath.Join(*work, "cache"))
	report.WriteString(b.tools.peerMarkdown())
	fmt.Fprintf(&report, "\n## msdav alone\n\n")
	for _, l := range b.alone {
		fmt.Fprintf(&report, "- %s\n", l)
	}
	fmt.Fprintf(&report, "\nPUT times include an fsync of the written file by the client after the response, so every server is measured durable; msdav already fsynced before answering. msdav/nginx is the median of per-round ratios, msdav's time divided by nginx's measured next to it in the same round: below 1 is faster than nginx; the per-round column gives the lowest and highest of those ratios, and the target column the ratio issue 15 asks for. GETs are preceded by a read of the file, so the page cache is warm for every server; the Go client reads into a 1 MiB buffer, curl as it does by default. Whole GETs are three per round and server, ranged GETs five, at offsets spread over the file. The order of the servers is shuffled in each round. The TLS rows use one self-signed P-256 certificate for both servers, nginx with `ssl_protocols TLSv1.3` (userland TLS, no kTLS), msdav with its defaults (HTTP/1.1), curl with `--http1.1`. Every request's status and byte count is checked: a failed one is no sample, and its row says failed.\n")
	report.WriteString(methodNotes)
	fails := append(b.table.failures(), b.tools.failures()...)
	fails = append(fails, b.errs...)
	if len(fails) > 0 {
		fmt.Fprintf(&report, "\n## Failures\n\n")
		for _, f := range fails {
			fmt.Fprintf(&report, "- %s\n", f)
		}
	}
	fmt.Print(report.String())
	must(os.WriteFile(*out, report.Bytes(), 0o644))
	if *raw == "" {
		*raw = filepath.Join(*work, "samples.csv")
	}
	writeRaw(*raw, b.table, b.tools)
	fmt.Fprintln(os.Stderr, "bench: every sample in", *raw)
	return len(fails) > 0
}
