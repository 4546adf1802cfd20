package diskimage

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (CI must install it in .ci/run)", name)
		}
		t.Skipf("needs %s (Debian dosfstools/mtools)", name)
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// Each image is checked by the tools a Linux user would trust: sfdisk reads
// the partition table, fsck.fat checks the filesystem, mtools writes a file
// into it and reads it back, and fsck.fat checks it again.
func TestFAT32ImagesPassRealTools(t *testing.T) {
	needTool(t, "fsck.fat")
	needTool(t, "mcopy")
	needTool(t, "sfdisk")
	for _, size := range []string{"34M", "512M", "2G", "8G", "32G"} {
		t.Run(size, func(t *testing.T) {
			n, err := ParseSize(size)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "flash.img")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := Format(f, n, Options{Label: "Test Disk"}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			table := sh(t, "sfdisk", "-d", p)
			if !strings.Contains(table, "start=        2048") || !strings.Contains(table, "type=c") {
				t.Errorf("partition table:\n%s", table)
			}
			part := p + "@@1M"
			fsck := func() {
				// fsck.fat needs the partition itself: a loop device at its
				// offset as root, else a sparse copy (slow for big images).
				pp := filepath.Join(t.TempDir(), "part.img")
				if os.Geteuid() == 0 {
					pp = strings.TrimSpace(sh(t, "losetup", "-f", "--show", "-r", "-o", "1048576", p))
					defer exec.Command("losetup", "-d", pp).Run()
				} else if n > 2<<30 {
					t.Skip("as non-root the partition is copied out for fsck.fat: too slow above 2G")
				} else {
					sh(t, "dd", "if="+p, "of="+pp, "bs=1M", "skip=1", "conv=sparse", "status=none")
				}
				out := sh(t, "fsck.fat", "-n", pp)
				if strings.Contains(out, "differ") || strings.Contains(out, "Dirty") {
					t.Errorf("fsck.fat -n:\n%s", out)
				}
			}
			fsck()
			src := filepath.Join(t.TempDir(), "BIOS.TXT")
			os.WriteFile(src, []byte("firmware update notes\n"), 0o644)
			env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
			cmd := exec.Command("mcopy", "-i", part, src, "::BIOS.TXT")
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("mcopy in: %v %s", err, out)
			}
			cmd = exec.Command("mtype", "-i", part, "::BIOS.TXT")
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil || !bytes.Equal(out, []byte("firmware update notes\n")) {
				t.Fatalf("mtype: %v %q", err, out)
			}
			cmd = exec.Command("mlabel", "-s", "-i", part, "::")
			cmd.Env = env
			if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "TEST DISK") {
				t.Errorf("label: %q", out)
			}
			fsck()
		})
	}
}

func TestFormatRefusals(t *testing.T) {
	f, _ := os.Create(filepath.Join(t.TempDir(), "x.img"))
	defer f.Close()
	for _, tc := range []struct {
		size int64
		o    Options
		want string
	}{
		{32 << 20, Options{}, "at least"},
		{0, Options{}, "positive"},
		{1000, Options{FS: "none"}, "multiple of 512"},
		{64 << 20, Options{FS: "ntfs"}, "want fat32 or none"},
		{64 << 20, Options{Label: "much too long label"}, "at most 11"},
		{64 << 20, Options{Label: "bad/label"}, "not allowed"},
	} {
		if err := Format(f, tc.size, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Format(%d, %+v) = %v, want %q", tc.size, tc.o, err, tc.want)
		}
	}
	if err := Format(f, 1<<20, Options{FS: "none"}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := f.Stat(); fi.Size() != 1<<20 {
		t.Errorf("fs=none size %d", fi.Size())
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"512M": 512 << 20, "1G": 1 << 30, "1GiB": 1 << 30, "1000MB": 1e9, "4096": 4096, " 2 g ": 2 << 30, "1t": 1 << 40,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1G", "1.5G", "12X", "0", "99999999999T"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512M", "1GiB", "1000MB", "7", "0", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n <= 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
