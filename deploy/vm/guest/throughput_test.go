//go:build vmguest

package guest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

// startBackendBox runs msdav with the given drive backend on its own gadget
// and UDC, its store a hard link of image (no copy of a 3 GiB file).
func startBackendBox(t *testing.T, name, port, udc, backend, image string) *box {
	t.Helper()
	root := "/tmp/box" + name
	os.MkdirAll(root, 0o755)
	if err := os.Link(image, root+"/dvd.iso"); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
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
`, port, name, root, backend, name, udc))
}

// readThroughputSideBySide attaches image (size bytes) as a flash drive on
// both backends at once, each on its own UDC, and reads its last 64 MiB
// from the host through both in alternating 8 MiB slices, so that both see
// the same load on this shared machine (rounds run one after the other
// once gave ratios from 0.32 to 1.19). It returns userspace/kernel.
func readThroughputSideBySide(t *testing.T, image string, size int64) float64 {
	k := startBackendBox(t, "K", "8091", "dummy_udc.0", "kernel", image)
	u := startBackendBox(t, "U", "8092", "dummy_udc.1", "userspace", image)
	defer func() {
		for _, b := range []*box{k, u} {
			b.do(t, "DELETE", "/api/drives/0?force=1", "")
			b.cmd.Process.Signal(syscall.SIGTERM)
			b.cmd.Wait()
			// The kernel backend's gadget outlives its server (by design:
			// a restart keeps the drives); free the UDC for the next test.
			os.WriteFile("/sys/kernel/config/usb_gadget/msdav"+b.name+"/UDC", []byte("\n"), 0o644)
		}
	}()
	devs := map[string]string{}
	for _, x := range []struct {
		b   *box
		bus string
	}{{k, "usb1"}, {u, "usb2"}} {
		if code, out := x.b.do(t, "PUT", "/api/drives/0", `{"image":"dvd.iso","cdrom":false}`); code != 200 {
			t.Fatalf("attach on box %s: %d %s", x.b.name, code, out)
		}
		waitFor(t, "box "+x.b.name+"'s drive on "+x.bus, 30*time.Second, func() bool {
			d := blockOnBus(x.bus)
			if d != "" && deviceSize(d) == size {
				devs[x.b.name] = d
				return true
			}
			return false
		})
	}
	const slice, slices_ = 8 << 20, 8
	start := size - slice*slices_
	took := map[string]time.Duration{}
	sums := map[string]io.Writer{}
	hk, hu := sha256.New(), sha256.New()
	sums["K"], sums["U"] = hk, hu
	var ratios []float64
	buf := make([]byte, slice)
	for i := range slices_ {
		order := []string{"K", "U"}
		if i%2 == 1 {
			order = []string{"U", "K"}
		}
		var d [2]time.Duration
		for j, name := range order {
			f, err := os.Open(devs[name])
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			// Buffered reads, as a booting host's: the kernel's read-ahead
			// makes the SCSI READs (120 KiB each at high speed). Only the
			// reads are timed: hashing in the same loop, on the VM's two
			// CPUs that are the USB host and the device at once, took CPU
			// from the device and made both rates about 2.6x lower.
			for o := 0; o < slice && err == nil; o += 32 << 10 {
				_, err = f.ReadAt(buf[o:o+32<<10], start+int64(i)*slice+int64(o))
			}
			d[j] = time.Since(t0)
			sums[name].Write(buf)
			f.Close()
			if err != nil {
				t.Fatalf("read %s (box %s): %v", devs[name], name, err)
			}
			took[name] += d[j]
		}
		if order[0] == "U" {
			d[0], d[1] = d[1], d[0]
		}
		ratios = append(ratios, d[0].Seconds()/d[1].Seconds())
	}
	want := sumTail(t, image, size, slice*slices_)
	if [32]byte(hk.Sum(nil)) != want || [32]byte(hu.Sum(nil)) != want {
		t.Fatal("the bytes read through a drive differ from the image")
	}
	mb := float64(slice*slices_) / (1 << 20)
	kr, ur := mb/took["K"].Seconds(), mb/took["U"].Seconds()
	slices.Sort(ratios)
	t.Logf("READ-MBPS kernel %.1f userspace %.1f (%d interleaved slices of 8 MiB each)", kr, ur, slices_)
	t.Logf("THROUGHPUT userspace/kernel = %.2f (kernel %.1f MB/s, userspace %.1f MB/s; per-slice ratios %.2f to %.2f, median %.2f)",
		ur/kr, kr, ur, ratios[0], ratios[len(ratios)-1], (ratios[len(ratios)/2-1]+ratios[len(ratios)/2])/2)
	return ur / kr
}
