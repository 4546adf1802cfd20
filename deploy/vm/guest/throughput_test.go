//go:build vmguest

package guest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startBackendBox runs msdav with the given drive backend on its own gadget
// and UDC, with one drive and its store in /tmp/box<name>. extra are more
// lines of config after the [gadget] section's own: more of it, or from a
// line "[section]" on, another section.
func startBackendBox(t *testing.T, name, port, udc, backend string, extra ...string) *box {
	t.Helper()
	root := "/tmp/box" + name
	os.MkdirAll(root, 0o755)
	return startBoxWith(t, name, port, fmt.Sprintf(`[server]
listen = "127.0.0.1:%s"
runtime_dir = "/run/msdav%s"
[storage]
root = %q
[gadget]
mode = "configfs"
backend = %q
name = "msdav%s"
udc = %q
drives = 1
%s
`, port, name, root, backend, name, udc, strings.Join(extra, "\n")))
}

// link puts a hard link of image in the box's store as file: no copy of a
// 3 GiB file.
func (b *box) link(t *testing.T, image, file string) {
	t.Helper()
	if err := os.Link(image, "/tmp/box"+b.name+"/"+file); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
}

// stopBackendBoxes ejects and stops boxes of startBackendBox.
func stopBackendBoxes(t *testing.T, boxes ...*box) {
	for _, b := range boxes {
		b.do(t, "DELETE", "/api/drives/0?force=1", "")
		b.cmd.Process.Signal(syscall.SIGTERM)
		b.cmd.Wait()
		// The kernel backend's gadget outlives its server (by design: a
		// restart keeps the drives); free the UDC for the next test.
		os.WriteFile("/sys/kernel/config/usb_gadget/msdav"+b.name+"/UDC", []byte("\n"), 0o644)
	}
}

// readThroughputSideBySide attaches image (size bytes) as a flash drive on
// both backends at once, each on its own UDC, and reads its last 64 MiB
// four times from the host through both in alternating 8 MiB slices, so
// that both see the same load on this shared machine (the backends
// measured one after the other once gave ratios from 0.32 to 1.19). It
// returns userspace/kernel.
func readThroughputSideBySide(t *testing.T, image string, size int64) float64 {
	k := startBackendBox(t, "K", "8091", "dummy_udc.0", "kernel")
	u := startBackendBox(t, "U", "8092", "dummy_udc.1", "userspace")
	k.link(t, image, "dvd.iso")
	u.link(t, image, "dvd.iso")
	defer stopBackendBoxes(t, k, u)
	devs := map[string]string{}
	for _, x := range []struct {
		b   *box
		bus string
	}{{k, "usb1"}, {u, "usb2"}} {
		if code, out := x.b.do(t, "PUT", "/api/drives/0", `{"image":"dvd.iso","cdrom":false}`); code != 200 {
			t.Fatalf("attach on box %s: %d %s", x.b.name, code, out)
		}
		devs[x.b.name], _ = waitBlockOnBus(t, "box "+x.b.name+"'s drive on "+x.bus, x.bus, size, 30*time.Second)
	}
	// Four rounds over the same 64 MiB: per-slice ratios in one boot
	// spread from about 0.45 to 0.9, so eight slices left a boot's figure
	// about ±0.04 from its mean; 32 halve that. The host's page cache of
	// a slice is dropped before each read, so every round reads the device.
	const slice, slices_, rounds = 8 << 20, 8, 4
	start := size - slice*slices_
	roundMiB := float64(slice*slices_) / (1 << 20)
	took := map[string]time.Duration{}
	cost := map[string]*machineCounters{"K": {}, "U": {}}
	sums := map[string]io.Writer{}
	hk, hu := sha256.New(), sha256.New()
	sums["K"], sums["U"] = hk, hu
	var ratios []float64
	var roundRates []string
	buf := make([]byte, slice)
	reader := sliceReader(t)
	for r := range rounds {
		var roundTook [2]time.Duration
		for i := range slices_ {
			order := []string{"K", "U"}
			if (r*slices_+i)%2 == 1 {
				order = []string{"U", "K"}
			}
			var d [2]time.Duration
			for j, name := range order {
				f, err := os.Open(devs[name])
				if err != nil {
					t.Fatal(err)
				}
				off := start + int64(i)*slice
				if err := unix.Fadvise(int(f.Fd()), off, slice, unix.FADV_DONTNEED); err != nil {
					t.Fatalf("drop the host's cache of %s: %v", devs[name], err)
				}
				c0 := countMachine(devs[name])
				d[j], err = reader.read(f, off, slice)
				cost[name].add(countMachine(devs[name]).since(c0))
				if err == nil && r == 0 {
					// Untimed, from the host's page cache that the timed read
					// filled: the bytes the drive sent.
					_, err = f.ReadAt(buf, off)
					sums[name].Write(buf)
				}
				f.Close()
				if err != nil {
					t.Fatalf("read %s (box %s): %v", devs[name], name, err)
				}
				took[name] += d[j]
			}
			if order[0] == "U" {
				d[0], d[1] = d[1], d[0]
			}
			roundTook[0] += d[0]
			roundTook[1] += d[1]
			ratios = append(ratios, d[0].Seconds()/d[1].Seconds())
		}
		roundRates = append(roundRates, fmt.Sprintf("%.1f/%.1f", roundMiB/roundTook[0].Seconds(), roundMiB/roundTook[1].Seconds()))
	}
	want := sumTail(t, image, size, slice*slices_)
	if [32]byte(hk.Sum(nil)) != want || [32]byte(hu.Sum(nil)) != want {
		t.Fatal("the bytes read through a drive differ from the image")
	}
	mb := roundMiB * rounds
	kr, ur := mb/took["K"].Seconds(), mb/took["U"].Seconds()
	slices.Sort(ratios)
	t.Logf("READ-MBPS kernel %.1f userspace %.1f (%d interleaved slices of 8 MiB each; MB/s kernel/userspace by round: %s)", kr, ur, slices_*rounds, strings.Join(roundRates, ", "))
	t.Logf("THROUGHPUT userspace/kernel = %.2f (kernel %.1f MB/s, userspace %.1f MB/s; per-slice ratios %.2f to %.2f, median %.2f; read by %s)",
		ur/kr, kr, ur, ratios[0], ratios[len(ratios)-1], (ratios[len(ratios)/2-1]+ratios[len(ratios)/2])/2, reader.name)
	t.Logf("PER-COMMAND kernel: %s; userspace: %s", cost["K"].perCommand(took["K"]), cost["U"].perCommand(took["U"]))
	hostReadScript(t, devs)
	// Where the time goes, from the kernel's own gadget tracepoints; only
	// when asked for (MSDAV_VM_PHASES=1 on the host), see TestUserspaceVM.
	if os.Getenv("MSDAV_PHASES") == "" {
		return ur / kr
	}
	k1, kc := tracePhases(t, devs["K"], start)
	u1, uc := tracePhases(t, devs["U"], start)
	if kc > 0 && uc > 0 {
		t.Logf("PHASES CBW in to first data queued: kernel %v, userspace %v; a whole command (CBW to CBW): kernel %v, userspace %v (medians over a 2 MiB read each)",
			k1, u1, kc, uc)
	}
	return ur / kr
}

// hostReader is how the benchmark's host reads a slice of a drive: buffered
// reads of 32 KiB, as a booting host's, which the kernel's read-ahead turns
// into SCSI READs of 120 KiB and 8 KiB. Only the reads are timed: hashing
// in the same loop, on the VM's two CPUs that are the USB host and the
// device at once, took CPU from the device and made both rates about 2.6x
// lower.
type hostReader struct {
	name string
	read func(f *os.File, off, n int64) (time.Duration, error)
}

// sliceReader is GNU dd from the host's tools, timed by dd itself, unless
// MSDAV_READER=go (msdav.reader=go on the guest's command line) asks for
// the Go loop that read until 2026-11-27. The reader shares the VM's two
// CPUs with both drives, where a real host's costs a drive nothing, so the
// lightest one measures the drives best. dd has no runtime: in 21 boots on
// 2026-11-27 the Go loop cost about 2 more context switches per command
// under both backends. dd's own clock leaves its fork and exec out.
func sliceReader(t *testing.T) hostReader {
	goLoop := hostReader{"a Go loop", func(f *os.File, off, n int64) (time.Duration, error) {
		buf := make([]byte, 32<<10)
		var err error
		t0 := time.Now()
		for o := int64(0); o < n && err == nil; o += int64(len(buf)) {
			_, err = f.ReadAt(buf, off+o)
		}
		return time.Since(t0), err
	}}
	if os.Getenv("MSDAV_READER") == "go" {
		return goLoop
	}
	if _, err := os.Stat("/hosttools/dd"); err != nil {
		t.Logf("no /hosttools/dd in this VM: the benchmark reads with a Go loop")
		return goLoop
	}
	return hostReader{"dd", func(f *os.File, off, n int64) (time.Duration, error) {
		return ddRead(f.Name(), off, n)
	}}
}

// ddRead reads n bytes at off from dev with GNU dd, 32 KiB a read, into
// /dev/null, and returns the time dd gives for its copy.
func ddRead(dev string, off, n int64) (time.Duration, error) {
	out, err := exec.Command("/hosttools/dd", "if="+dev, "of=/dev/null", "bs=32K",
		"iflag=skip_bytes,count_bytes", fmt.Sprint("skip=", off), fmt.Sprint("count=", n)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("dd: %v: %s", err, out)
	}
	m := ddCopied.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("dd printed no byte count and time: %s", out)
	}
	if string(m[1]) != fmt.Sprint(n) {
		return 0, fmt.Errorf("dd copied %s bytes of %d: %s", m[1], n, out)
	}
	s, err := strconv.ParseFloat(string(m[2]), 64)
	if err != nil || s <= 0 {
		return 0, fmt.Errorf("dd's time %q: %v", m[2], err)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// ddCopied is GNU dd's summary line: "8388608 bytes (8.4 MB, 8.0 MiB)
// copied, 0.274 s, 30.6 MB/s".
var ddCopied = regexp.MustCompile(`(?m)^(\d+) bytes .*copied, ([0-9.e+-]+) s,`)

// hostReadScript runs deploy/hostread.sh, the script a person runs on a
// real USB host to compare the backends, against both drives, one after
// the other: it must work against the real device (under dash, with
// busybox's tools but for GNU date and dd, as a PC has), and its figures
// are a second, plainer look at the ratio. The harness copies it to
// /hosttools, and dash, date and dd with it as hostTools.
func hostReadScript(t *testing.T, devs map[string]string) {
	for _, f := range []string{"hostread.sh", "dash", "date"} {
		if _, err := os.Stat("/hosttools/" + f); err != nil {
			t.Logf("no /hosttools/%s in this VM: the host-side script is not run", f)
			return
		}
	}
	// K, U, U, K: a drift of the machine's speed during the four runs
	// weighs on both backends alike.
	sum := map[string]float64{}
	for _, name := range []string{"K", "U", "U", "K"} {
		cmd := exec.Command("/hosttools/dash", "/hosttools/hostread.sh", devs[name], "64", "2")
		cmd.Env = append(os.Environ(), "PATH=/hosttools:/bin")
		out, err := cmd.CombinedOutput()
		m := regexp.MustCompile(`(?m)^` + devs[name] + `: median ([0-9.]+) MB/s over 2 rounds of 64 MiB$`).FindStringSubmatch(string(out))
		if err != nil || m == nil {
			t.Errorf("deploy/hostread.sh %s (box %s): %v\n%s", devs[name], name, err, out)
			return
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		sum[name] += v
	}
	t.Logf("HOSTREAD deploy/hostread.sh, each backend alone in turn (kernel, userspace, userspace, kernel; 2 rounds of 64 MiB each): kernel %.1f MB/s, userspace %.1f MB/s, userspace/kernel %.2f",
		sum["K"]/2, sum["U"]/2, sum["U"]/sum["K"])
}

// tracePhases reads 2 MiB at off from dev with the gadget tracepoints on
// (usb_ep_queue, usb_gadget_giveback_request) and returns the medians of
// the time from a CBW's arrival to the first data queued for it, and from
// one CBW to the next. Zero when the kernel has no such tracepoints.
func tracePhases(t *testing.T, dev string, off int64) (firstData, command time.Duration) {
	const dir = "/sys/kernel/tracing/"
	if _, err := os.Stat(dir + "events"); err != nil {
		syscall.Mount("tracefs", dir, "tracefs", 0, "")
	}
	set := func(f, v string) error { return os.WriteFile(dir+f, []byte(v), 0o644) }
	for _, ev := range []string{"usb_ep_queue", "usb_gadget_giveback_request"} {
		if err := set("events/gadget/"+ev+"/enable", "1"); err != nil {
			t.Logf("no gadget tracepoints here (%v): no phases", err)
			return 0, 0
		}
	}
	// The host's cache holds what the timed reads read: drop it, so that
	// this read goes to the device again.
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0o644)
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set("trace", "")
	set("tracing_on", "1")
	buf := make([]byte, 32<<10)
	for o := int64(0); o < 2<<20; o += int64(len(buf)) {
		if _, err := f.ReadAt(buf, off+o); err != nil {
			t.Fatal(err)
		}
	}
	set("tracing_on", "0")
	b, _ := os.ReadFile(dir + "trace")
	set("events/gadget/enable", "0")
	return commandPhases(string(b))
}

// commandPhases reads a trace of the gadget tracepoints: a CBW is a
// 31-byte completion on bulk OUT, its data the next queue on bulk IN that
// is not a 13-byte CSW.
func commandPhases(trace string) (firstData, command time.Duration) {
	var cbw float64 = -1
	var waiting bool
	var first, cmd []float64
	for _, line := range strings.Split(trace, "\n") {
		m := tracePoint.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, _ := strconv.ParseFloat(m[1], 64)
		done, out := m[2] == "usb_gadget_giveback_request", strings.HasSuffix(m[3], "out")
		switch {
		case done && out && m[4] == "31":
			if cbw >= 0 {
				cmd = append(cmd, at-cbw)
			}
			cbw, waiting = at, true
		case !done && !out && m[5] != "13" && waiting:
			first = append(first, at-cbw)
			waiting = false
		}
	}
	median := func(v []float64) time.Duration {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return time.Duration(v[len(v)/2] * float64(time.Second)).Round(10 * time.Microsecond)
	}
	return median(first), median(cmd)
}

// tracePoint is one line of the gadget tracepoints: time, event, endpoint,
// bytes done and asked.
var tracePoint = regexp.MustCompile(`\s(\d+\.\d+): (usb_ep_queue|usb_gadget_giveback_request): (ep\d+(?:in|out))[-\w]*: .*length (\d+)/(\d+)`)

// machineCounters are the guest kernel's counters that tell where a
// command's time goes without tracing (which once locked this TCG guest
// up, see TestUserspaceVM): the reads the host's block device completed
// (one SCSI READ each), context switches, cross-CPU interrupts (reschedule
// and function-call IPIs: wake-ups on the other CPU), and runs of soft
// hrtimers, which here are dummy_hcd's: it means to move transfers every
// 125 µs while the host has one pending, so its runs per command count the
// ticks a command's transfers waited (of a length the count does not give:
// on 2026-11-26 usbmon's timestamps showed ticks longer than 125 µs under
// load, see docs/userspace-throughput.md).
type machineCounters struct {
	reads, switches, ipis, usbTicks int64
}

func (c *machineCounters) add(d machineCounters) {
	c.reads += d.reads
	c.switches += d.switches
	c.ipis += d.ipis
	c.usbTicks += d.usbTicks
}

func (c machineCounters) since(b machineCounters) machineCounters {
	return machineCounters{c.reads - b.reads, c.switches - b.switches, c.ipis - b.ipis, c.usbTicks - b.usbTicks}
}

func (c machineCounters) perCommand(took time.Duration) string {
	if c.reads == 0 {
		return "no counters"
	}
	n := float64(c.reads)
	return fmt.Sprintf("%.2f ms, %.1f context switches, %.1f IPIs, %.1f USB timer runs (%d READs)",
		took.Seconds()*1000/n, float64(c.switches)/n, float64(c.ipis)/n, float64(c.usbTicks)/n, c.reads)
}

// countMachine reads the counters; dev is the host's block device whose
// completed reads count the commands. A counter it cannot read stays zero.
func countMachine(dev string) machineCounters {
	var c machineCounters
	if b, err := os.ReadFile("/sys/block/" + strings.TrimPrefix(dev, "/dev/") + "/stat"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			c.reads, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) == 2 && f[0] == "ctxt":
				c.switches, _ = strconv.ParseInt(f[1], 10, 64)
			case len(f) > 10 && f[0] == "softirq":
				// total, HI, TIMER, NET_TX, NET_RX, BLOCK, IRQ_POLL,
				// TASKLET, SCHED, HRTIMER, RCU
				c.usbTicks, _ = strconv.ParseInt(f[10], 10, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/interrupts"); err == nil {
		lines := strings.Split(string(b), "\n")
		cpus := len(strings.Fields(lines[0]))
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) <= cpus || (f[0] != "RES:" && f[0] != "CAL:") {
				continue
			}
			for _, v := range f[1 : 1+cpus] {
				n, _ := strconv.ParseInt(v, 10, 64)
				c.ipis += n
			}
		}
	}
	return c
}
