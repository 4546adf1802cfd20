// Command driver runs msdav's side-by-side benchmark (make bench): it starts
// msdav, nginx (dav + dav_ext), Apache mod_dav, rclone serve webdav and plain
// x/net/webdav on loopback, measures them interleaved, and prints ratios.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	mathrand "math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type server struct {
	name string
	url  string // share root, trailing slash
	root string // its directory on disk
	cmd  *exec.Cmd
}

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

// order is the order the servers take their turns in round r: shuffled,
// with a fixed seed, so that no server always follows the same one (a
// rotation made msdav always follow dd, and pay for what dd left behind).
func order(n, r int) []int {
	return mathrand.New(mathrand.NewSource(int64(r) + 1)).Perm(n)
}

// results keeps samples per row and server: wall time, and the CPU time
// the server used for it.
type results struct {
	rows  []string
	cells map[string]map[string][]time.Duration
	cpu   map[string]map[string][]time.Duration
	raw   [][]string
}

// measure times one request and reads the server's CPU time around it.
// do returns the wall time and any CPU time the client spent on the
// server's behalf (the fsync a server left to it), charged to the server.
func (r *results) measure(row string, s *server, do func() (time.Duration, time.Duration)) {
	c0 := cpuTime(s)
	d, charged := do()
	c := cpuTime(s) - c0 + charged
	r.add(row, s.name, d)
	if r.cpu == nil {
		r.cpu = map[string]map[string][]time.Duration{}
	}
	if r.cpu[row] == nil {
		r.cpu[row] = map[string][]time.Duration{}
	}
	r.cpu[row][s.name] = append(r.cpu[row][s.name], c)
	r.raw = append(r.raw, []string{row, s.name, strconv.FormatInt(d.Microseconds(), 10), strconv.FormatInt(c.Microseconds(), 10)})
}

func (r *results) writeRaw(path string) {
	f, err := os.Create(path)
	must(err)
	w := csv.NewWriter(f)
	w.Write([]string{"measurement", "server", "wall_us", "cpu_us"})
	w.WriteAll(r.raw)
	must(f.Close())
}

// trimmedMean drops the lowest and highest fifth of the samples and
// averages the rest: one stall of the VM made a mean of five PUTs 2x, and a
// median of values in 10 ms ticks is too coarse for the short requests.
func trimmedMean(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	cut := len(s) / 5
	s = s[cut : len(s)-cut]
	var t time.Duration
	for _, d := range s {
		t += d
	}
	return t / time.Duration(len(s))
}

// cpuMarkdown is the trimmed mean CPU time per request of each server: the
// kernel's share (copies, page cache, sendfile) included, so it says what
// each server costs a small box's processor.
func (r *results) cpuMarkdown() string {
	cols := []string{"msdav", "nginx", "apache", "rclone", "plain"}
	var b strings.Builder
	b.WriteString("| measurement | " + strings.Join(cols, " | ") + " | msdav/nginx |\n|---|" + strings.Repeat("---|", len(cols)+1) + "\n")
	mean := trimmedMean
	for _, row := range r.rows {
		if r.cpu[row] == nil {
			continue
		}
		writeCells(&b, row, r.cpu[row], cols, mean)
		m, n := r.cpu[row]["msdav"], r.cpu[row]["nginx"]
		if len(m) > 0 && len(n) > 0 && mean(n) > 0 {
			fmt.Fprintf(&b, " **%.2f** |\n", float64(mean(m))/float64(mean(n)))
		} else {
			b.WriteString(" |\n")
		}
	}
	return b.String()
}

func (r *results) add(row, server string, d time.Duration) {
	if r.cells == nil {
		r.cells = map[string]map[string][]time.Duration{}
	}
	if r.cells[row] == nil {
		r.cells[row] = map[string][]time.Duration{}
		r.rows = append(r.rows, row)
	}
	r.cells[row][server] = append(r.cells[row][server], d)
}

// writeCells writes the start of a table row: its name, then one summary
// of each column's samples, empty where a server has none.
func writeCells(b *strings.Builder, row string, cells map[string][]time.Duration, cols []string, summary func([]time.Duration) time.Duration) {
	b.WriteString("| " + row + " |")
	for _, c := range cols {
		if ds := cells[c]; len(ds) > 0 {
			b.WriteString(" " + fmtDur(summary(ds)) + " |")
		} else {
			b.WriteString(" |")
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func (r *results) markdown() string {
	cols := []string{"msdav", "nginx", "apache", "rclone", "plain", "dd conv=fsync"}
	var b strings.Builder
	b.WriteString("| measurement | " + strings.Join(cols, " | ") + " | msdav/nginx | per round |\n|---|" + strings.Repeat("---|", len(cols)+2) + "\n")
	for _, row := range r.rows {
		writeCells(&b, row, r.cells[row], cols, median)
		if mid, lo, hi, ok := pairedRatio(r.cells[row]["msdav"], r.cells[row]["nginx"]); ok {
			fmt.Fprintf(&b, " **%.2f** | %.2f–%.2f |\n", mid, lo, hi)
		} else {
			b.WriteString(" | |\n")
		}
	}
	return b.String()
}

// pairedRatio divides each msdav sample by the nginx sample taken in the
// same round, next to it in time, so that a slow moment of the machine
// weighs on both; it gives the median and the extremes of those ratios.
func pairedRatio(m, n []time.Duration) (mid, lo, hi float64, ok bool) {
	if len(m) == 0 || len(m) != len(n) {
		return 0, 0, 0, false
	}
	rs := make([]float64, len(m))
	for i := range m {
		rs[i] = float64(m[i]) / float64(n[i])
	}
	sort.Float64s(rs)
	return rs[len(rs)/2], rs[0], rs[len(rs)-1], true
}

func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func human(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

var (
	procMu  sync.Mutex
	started []*exec.Cmd
)

// stopAll kills every server started, also when the run fails.
func stopAll() {
	procMu.Lock()
	defer procMu.Unlock()
	if restoreReporting != nil {
		restoreReporting()
		restoreReporting = nil
	}
	for _, c := range started {
		if c.Process != nil {
			c.Process.Kill()
			c.Wait()
		}
	}
	started = nil
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stopAll()
		os.Exit(1)
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().String()
}

func waitUp(url string) {
	for i := 0; i < 200; i++ {
		req, _ := http.NewRequest("OPTIONS", url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(fmt.Errorf("%s did not come up", url))
}

func start(name, root, url string, cmd *exec.Cmd) *server {
	logf, _ := os.Create(filepath.Join(*work, name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	must(cmd.Start())
	procMu.Lock()
	started = append(started, cmd)
	procMu.Unlock()
	waitUp(url)
	return &server{name: name, url: url, root: root, cmd: cmd}
}

func startMsdav(name, root string, remount bool, flags ...string) *server {
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	cfg := filepath.Join(*work, name+".toml")
	must(os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nlisten = %q\n[storage]\nroot = %q\nremount = %v\n[gadget]\nmode = \"disabled\"\n", addr, root, remount)), 0o644))
	return start(name, root, "http://"+addr+"/dav/", exec.Command(*msdav, append([]string{"serve", "-config", cfg}, flags...)...))
}

func startNginx() *server {
	root := filepath.Join(*work, "nginx")
	for _, d := range []string{root, filepath.Join(*work, "nginx-tmp")} {
		must(os.MkdirAll(d, 0o755))
	}
	addr := freePort()
	conf := fmt.Sprintf(`load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
daemon off; master_process off; worker_processes 1; user root;
error_log %[1]s/nginx.err; pid %[1]s/nginx.pid;
events { worker_connections 64; }
http {
  access_log off; sendfile on; tcp_nopush on; client_max_body_size 0;
  client_body_temp_path %[1]s/nginx-tmp; client_body_buffer_size 1m;
  server { listen %[2]s; root %[3]s;
    location / { dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS; create_full_put_path on; } }
}
`, *work, addr, root)
	p := filepath.Join(*work, "nginx.conf")
	must(os.WriteFile(p, []byte(conf), 0o644))
	return start("nginx", root, "http://"+addr+"/", exec.Command("nginx", "-c", p, "-p", *work))
}

func startApache() *server {
	root := filepath.Join(*work, "apache")
	lock := filepath.Join(*work, "apache-lock")
	must(os.MkdirAll(root, 0o755))
	must(os.MkdirAll(lock, 0o777))
	os.Chmod(lock, 0o777)
	addr := freePort()
	m := "/usr/lib/apache2/modules/"
	conf := fmt.Sprintf(`LoadModule mpm_event_module %[1]smod_mpm_event.so
LoadModule authz_core_module %[1]smod_authz_core.so
LoadModule unixd_module %[1]smod_unixd.so
LoadModule dav_module %[1]smod_dav.so
LoadModule dav_fs_module %[1]smod_dav_fs.so
User www-data
Group www-data
ServerName localhost
Listen %[2]s
PidFile %[3]s/apache.pid
ErrorLog %[3]s/apache.err
DocumentRoot %[4]s
DavLockDB %[5]s/lockdb
<Directory %[4]s>
  Dav On
  Require all granted
</Directory>
`, m, addr, *work, root, lock)
	p := filepath.Join(*work, "apache.conf")
	must(os.WriteFile(p, []byte(conf), 0o644))
	if _, err := os.Stat(m + "mod_unixd.so"); err != nil {
		conf = strings.Replace(conf, "LoadModule unixd_module "+m+"mod_unixd.so\n", "", 1)
		must(os.WriteFile(p, []byte(conf), 0o644))
	}
	cmd := exec.Command("apache2", "-X", "-f", p)
	cmd.Env = append(os.Environ(), "APACHE_RUN_DIR="+*work)
	return start("apache", root, "http://"+addr+"/", cmd)
}

func startRclone() *server {
	root := filepath.Join(*work, "rclone")
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	return start("rclone", root, "http://"+addr+"/", exec.Command("rclone", "serve", "webdav", root, "--addr", addr, "--dir-cache-time", "1s", "--config", filepath.Join(*work, "rclone.conf")))
}

func startPlain() *server {
	root := filepath.Join(*work, "plain")
	must(os.MkdirAll(root, 0o755))
	addr := freePort()
	return start("plain", root, "http://"+addr+"/", exec.Command(*plain, "-listen", addr, "-root", root))
}

func makeSource(path string, size int64) {
	f, err := os.Create(path)
	must(err)
	buf := make([]byte, 4<<20)
	rand.Read(buf)
	for n := int64(0); n < size; n += int64(len(buf)) {
		_, err := f.Write(buf[:min(int64(len(buf)), size-n)])
		must(err)
	}
	must(f.Close())
	exec.Command("sync").Run()
}

// ranges are the Range headers of the ranged GETs of a file of size: five
// of n bytes each (64 MiB, or a quarter of a small file), from its start to
// its end.
func ranges(size int64) (rngs []string, n int64) {
	n = min(int64(64<<20), size/4)
	for k := int64(0); k < 5; k++ {
		off := (size - n) * k / 4
		rngs = append(rngs, fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	}
	return rngs, n
}

// makeFolder fills dir with the 10,000 one-byte images PROPFIND is timed on.
func makeFolder(dir string) {
	must(os.MkdirAll(dir, 0o755))
	for i := 0; i < 10000; i++ {
		must(os.WriteFile(filepath.Join(dir, fmt.Sprintf("image-%05d.iso", i)), []byte("x"), 0o644))
	}
}

// warm reads a file through the page cache, so a GET measures the server
// and not the disk.
func warm(path string) {
	f, err := os.Open(path)
	must(err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
	}
}

// dropCache evicts a file just written (and fsynced, so clean) from the
// page cache. Otherwise each PUT leaves up to 4 GiB cached, and the next
// one runs into reclaim when memory is full: a cost that depends on the
// order of the rounds, not on the server being measured.
func dropCache(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

func ddTime(src, dst string) time.Duration {
	os.Remove(dst) // as for the servers: a new file, nothing dirty before the clock starts
	exec.Command("sync").Run()
	start := time.Now()
	out, err := exec.Command("dd", "if="+src, "of="+dst, "bs=4M", "conv=fsync", "status=none").CombinedOutput()
	if err != nil {
		must(fmt.Errorf("dd: %v %s", err, out))
	}
	d := time.Since(start)
	if f, err := os.Open(dst); err == nil {
		dropCache(f)
		f.Close()
	}
	return d
}

// putTime uploads src and fsyncs what the server wrote. It returns the
// wall time and the CPU time of that fsync: for a server that answered
// before syncing, the client did part of its work.
func putTime(s *server, name, src string, size int64) (time.Duration, time.Duration) {
	os.Remove(filepath.Join(s.root, name))
	exec.Command("sync").Run()
	f, err := os.Open(src)
	must(err)
	defer f.Close()
	start := time.Now()
	req, _ := http.NewRequest("PUT", s.url+name, f)
	req.ContentLength = size
	resp, err := client.Do(req)
	must(err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		must(fmt.Errorf("%s PUT: %s", s.name, resp.Status))
	}
	// Durable for everyone: fsync what the server wrote.
	w, err := os.OpenFile(filepath.Join(s.root, name), os.O_RDWR, 0)
	must(err)
	runtime.LockOSThread()
	c0 := threadCPU()
	must(w.Sync())
	d := time.Since(start)
	fsyncCPU := threadCPU() - c0
	runtime.UnlockOSThread()
	dropCache(w)
	w.Close()
	return d, fsyncCPU
}

// threadCPU is the calling thread's user and system time.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// getBuf is where GET bodies land. io.Copy to io.Discard reads 8 KiB at a
// time: the client then costs more than the server and decides the result.
var getBuf = make([]byte, 1<<20)

func getTime(s *server, name, rng string, want int64) time.Duration {
	req, _ := http.NewRequest("GET", s.url+name, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	start := time.Now()
	resp, err := client.Do(req)
	must(err)
	var n int64
	for {
		m, err := resp.Body.Read(getBuf)
		n += int64(m)
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if n != want {
		must(fmt.Errorf("%s GET %s: %d bytes, want %d (%s)", s.name, rng, n, want, resp.Status))
	}
	return time.Since(start)
}

// curlTime is a GET by curl, a client with other habits than Go's (16 KiB
// reads): the servers do not rank the same under both.
func curlTime(s *server, name, rng string, want int64) time.Duration {
	args := []string{"-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"}
	if rng != "" {
		args = append(args, "-r", strings.TrimPrefix(rng, "bytes="))
	}
	start := time.Now()
	out, err := exec.Command("curl", append(args, s.url+name)...).Output()
	d := time.Since(start)
	must(err)
	var code int
	var n int64
	fmt.Sscan(string(out), &code, &n)
	if n != want {
		must(fmt.Errorf("%s curl GET %s: %d bytes, want %d (status %d)", s.name, rng, n, want, code))
	}
	return d
}

func propfindTime(s *server, dir string) time.Duration {
	body := `<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getcontentlength/><getlastmodified/><resourcetype/></prop></propfind>`
	req, _ := http.NewRequest("PROPFIND", s.url+dir, strings.NewReader(body))
	req.Header.Set("Depth", "1")
	req.Header.Set("Content-Type", "application/xml")
	start := time.Now()
	resp, err := client.Do(req)
	must(err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != 207 || bytes.Count(b, []byte("image-")) < 10000 {
		must(fmt.Errorf("%s PROPFIND: %s, %d entries", s.name, resp.Status, bytes.Count(b, []byte("image-"))))
	}
	return d
}

// smallWrites puts 1,000 small files into a msdav whose store is a real
// tmpfs with the remount guard on, and reads the cycles from /metrics.
func smallWrites() (cycles string, took string) {
	if os.Geteuid() != 0 {
		return "not measured (needs root to mount a tmpfs)", "-"
	}
	dir := filepath.Join(*work, "remount-store")
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", dir).CombinedOutput(); err != nil {
		return fmt.Sprintf("not measured (mount: %v %s)", err, out), "-"
	}
	defer exec.Command("umount", "-l", dir).Run()
	s := startMsdav("msdav-remount", dir, true)
	defer func() { s.cmd.Process.Kill(); s.cmd.Wait() }()
	data := bytes.Repeat([]byte("x"), 4096)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%sf-%d-%d.txt", s.url, w, i), bytes.NewReader(data))
				resp, err := client.Do(req)
				must(err)
				resp.Body.Close()
			}
		}(w)
	}
	wg.Wait()
	took = time.Since(start).Round(time.Millisecond).String()
	resp, err := client.Get(strings.TrimSuffix(s.url, "/dav/") + "/metrics")
	must(err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^msdav_remount_cycles_total (\d+)`).FindSubmatch(b)
	if m == nil {
		return "not found in /metrics", took
	}
	return string(m[1]), took
}

// peakRSS runs four concurrent uploads into a fresh msdav and reads VmHWM.
func peakRSS(size int64) string {
	src := filepath.Join(*work, "rss-src.bin")
	makeSource(src, size)
	defer os.Remove(src)
	root := filepath.Join(*work, "msdav-rss")
	os.RemoveAll(root)
	defer os.RemoveAll(root)
	s := startMsdav("msdav-rss", root, false)
	defer func() { s.cmd.Process.Kill(); s.cmd.Wait() }()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			f, err := os.Open(src)
			must(err)
			defer f.Close()
			req, _ := http.NewRequestWithContext(context.Background(), "PUT", fmt.Sprintf("%sup-%d.bin", s.url, i), f)
			req.ContentLength = size
			resp, err := client.Do(req)
			must(err)
			resp.Body.Close()
		}(i)
	}
	wg.Wait()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	must(err)
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return "unknown"
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
}

// profiles runs msdav alone under its -cpuprofile flag, one process per
// operation, so each profile shows one kind of request.
func profiles(dir string) {
	must(os.MkdirAll(dir, 0o755))
	size := int64(1 << 30)
	if *quick {
		size = 128 << 20
	}
	src := filepath.Join(*work, "profile-src.bin")
	makeSource(src, size)
	defer os.Remove(src)
	run := func(op string, setup func(s *server), load func(s *server)) {
		root := filepath.Join(*work, "msdav-profile-"+op)
		out := filepath.Join(dir, op+".pprof")
		s := startMsdav("msdav-profile-"+op, root, false, "-cpuprofile", out)
		setup(s)
		load(s)
		must(s.cmd.Process.Signal(syscall.SIGTERM))
		s.cmd.Wait()
		os.RemoveAll(root)
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", out)
	}
	none := func(*server) {}
	run("put", none, func(s *server) {
		for i := 0; i < 3; i++ {
			putTime(s, "big.bin", src, size)
		}
	})
	run("get", func(s *server) {
		putTime(s, "big.bin", src, size)
		warm(filepath.Join(s.root, "big.bin"))
	}, func(s *server) {
		for i := 0; i < 5; i++ {
			getTime(s, "big.bin", "", size)
		}
		rngs, n := ranges(size)
		for i := 0; i < 4; i++ {
			for _, rng := range rngs {
				getTime(s, "big.bin", rng, n)
			}
		}
	})
	run("propfind", func(s *server) {
		makeFolder(filepath.Join(s.root, "many"))
	}, func(s *server) {
		for i := 0; i < 50; i++ {
			propfindTime(s, "many/")
		}
	})
}

const reportingOrder = "/sys/module/page_reporting/parameters/page_reporting_order"

var restoreReporting func()

// pausePageReporting stops a VM guest from handing freed pages back to its
// host for the run. With it on, every file a PUT replaces frees memory
// that the next PUT faults back in from the host, at about 0.3 GiB/s
// here, at random moments: dd of 1 GiB took from 0.25 s to 2.9 s. Real
// hardware has no such thing. Orders above the largest (10) are never
// reported. The old value comes back when the run ends.
func pausePageReporting() string {
	old, err := os.ReadFile(reportingOrder)
	if err != nil {
		return "not present (not a VM with free page reporting)"
	}
	if err := os.WriteFile(reportingOrder, []byte("11"), 0o644); err != nil {
		return fmt.Sprintf("on (could not pause it: %v): expect noisy PUT times", err)
	}
	restoreReporting = func() { os.WriteFile(reportingOrder, old, 0o644) }
	took, gib := prefault()
	return fmt.Sprintf("paused for the run (page_reporting_order %s -> 11, restored after), and %.1f GiB of free memory faulted in from the host first (%.0f s)",
		strings.TrimSpace(string(old)), gib, took.Seconds())
}

// prefault touches the guest's free memory once, so that pages the host
// took back before the run are its own again. Otherwise the first server to
// write pays for them: the first 4 GiB PUT of a run took 12.6 s, the next
// ones 2.7-3.0 s.
func prefault() (time.Duration, float64) {
	var avail int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemAvailable:\s+(\d+) kB`).FindSubmatch(b); m != nil {
			kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
			avail = kb << 10
		}
	}
	start := time.Now()
	const chunk = 256 << 20
	var maps [][]byte
	defer func() {
		for _, m := range maps {
			unix.Munmap(m)
		}
	}()
	touched := int64(0)
	for touched+chunk < avail-(1<<30) { // leave 1 GiB for everything else
		m, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			break
		}
		for i := 0; i < len(m); i += 4096 {
			m[i] = 1
		}
		maps = append(maps, m)
		touched += chunk
	}
	return time.Since(start), float64(touched) / (1 << 30)
}

// cpuTime is the user and system time the process has used so far, all
// threads included, from /proc (clock ticks of 10 ms).
func cpuTime(s *server) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func machine() string {
	var mem string
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(b); m != nil {
			kb, _ := strconv.Atoi(string(m[1]))
			mem = fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`model name\s+: (.*)`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	return fmt.Sprintf("%d cores (%s), %s, Linux %s, %s", runtime.NumCPU(), cpu, mem, strings.TrimSpace(string(kernel)), runtime.Version())
}

func fsType(dir string) string {
	out, err := exec.Command("stat", "-f", "-c", "%T", dir).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
