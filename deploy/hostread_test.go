package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/msdav/msdav/internal/fusetest"
)

// hostread.sh is run by a person on a USB host against the drive's block
// device; these run it against loop devices, the same kind of device.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices and dropping the page cache")
	}
}

// loopDevice attaches file read-only and returns the device.
func loopDevice(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("losetup", "-r", "-f", "--show", file).CombinedOutput()
	if err != nil {
		t.Skipf("cannot attach a loop device here: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func hostRead(args ...string) (string, int) {
	return runScript(exec.Command("sh", append([]string{"hostread.sh"}, args...)...))
}

// runScript runs cmd and returns its output and exit status (-1: it did
// not run).
func runScript(cmd *exec.Cmd) (string, int) {
	out, err := cmd.CombinedOutput()
	code := 0
	if e, ok := err.(*exec.ExitError); ok {
		code = e.ExitCode()
	} else if err != nil {
		code = -1
	}
	return string(out), code
}

func TestHostRead(t *testing.T) {
	needRoot(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 24<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := loopDevice(t, img)

	out, code := hostRead(dev, "8", "3")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	rounds := regexp.MustCompile(`(?m)^round (\d): ([0-9.]+) MB/s$`).FindAllStringSubmatch(out, -1)
	if len(rounds) != 3 {
		t.Fatalf("want 3 rounds, got:\n%s", out)
	}
	for _, r := range rounds {
		if v, _ := strconv.ParseFloat(r[2], 64); v <= 0 {
			t.Errorf("round %s: %s MB/s", r[1], r[2])
		}
	}
	if !regexp.MustCompile(`(?m)^` + dev + `: median [0-9.]+ MB/s over 3 rounds of 8 MiB$`).MatchString(out) {
		t.Errorf("no median line:\n%s", out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no device", nil, "usage: hostread.sh DEVICE"},
		{"too many arguments", []string{dev, "8", "1", "x"}, "usage: hostread.sh DEVICE"},
		{"a file, not a device", []string{img}, "is not a block device"},
		{"more than the device holds", []string{dev, "25"}, "holds 25165824 bytes, fewer than 25 MiB"},
		{"not a number", []string{dev, "8M"}, `whole numbers from 1, not "8M"`},
		{"no rounds", []string{dev, "8", "0"}, `whole numbers from 1, not "0"`},
		{"a leading zero", []string{dev, "08"}, `whole numbers from 1, not "08"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := hostRead(tc.args...)
			if code != 2 || !strings.Contains(out, tc.want) || strings.Contains(out, "MB/s") {
				t.Errorf("exit %d, want 2 and %q:\n%s", code, tc.want, out)
			}
		})
	}

	t.Run("a date without nanoseconds", func(t *testing.T) {
		busybox, err := exec.LookPath("busybox")
		if err != nil {
			t.Skip("needs busybox, whose date has no %N")
		}
		bin := t.TempDir()
		os.Symlink(busybox, filepath.Join(bin, "date"))
		cmd := exec.Command("sh", "hostread.sh", dev, "8")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		if out, code := runScript(cmd); code != 2 || !strings.Contains(out, "needs a date that prints nanoseconds") {
			t.Errorf("with busybox's date: exit %d:\n%s", code, out)
		}
	})

	t.Run("not root", func(t *testing.T) {
		out, code := runScript(exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "hostread.sh", dev, "8"))
		if code != 2 || !strings.Contains(out, "run it with sudo") {
			t.Errorf("as nobody: exit %d:\n%s", code, out)
		}
	})
}

// A read error ends the run with what was read, not a figure.
func TestHostReadShortRead(t *testing.T) {
	needRoot(t)
	mnt := t.TempDir()
	// a medium that fails mid-read, as a URL image whose server died does
	fusetest.FailingFile(t, mnt, "disk.img", 24<<20, 20<<20)
	dev := loopDevice(t, filepath.Join(mnt, "disk.img"))
	out, code := hostRead(dev, "8", "2")
	if code != 2 || !regexp.MustCompile(`read \d+ of 256 blocks of 32 KiB from `+dev+` in round 1: .*Input/output error`).MatchString(out) || strings.Contains(out, "MB/s") {
		t.Errorf("exit %d, want 2 and a short read:\n%s", code, out)
	}
}
