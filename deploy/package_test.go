package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// packageArch is one architecture make package builds, by each format's name.
type packageArch struct {
	nfpm, deb, arch string
	machine         elf.Machine
}

var packageArches = []packageArch{
	{"amd64", "amd64", "x86_64", elf.EM_X86_64},
	{"arm64", "arm64", "aarch64", elf.EM_AARCH64},
	{"arm7", "armhf", "armv7h", elf.EM_ARM},
	{"riscv64", "riscv64", "riscv64", elf.EM_RISCV},
}

// packageFiles are what every package holds, binary first.
var packageFiles = []string{
	"usr/bin/msdav",
	"usr/lib/systemd/system/msdav.service",
	"etc/msdav/msdav.toml",
	"var/lib/msdav/images/",
	"usr/share/doc/msdav/README.md",
	"usr/share/doc/msdav/SETUP.md",
}

// needPackageTools skips without what make package and the checks run,
// except under CI=true, where .ci/run installed them.
func needPackageTools(t *testing.T) {
	t.Helper()
	if os.Getenv("MSDAV_TEST_EXEC") != "" {
		t.Skip("make package runs on the build machine: proven by the native run, not under qemu (make crosstest)")
	}
	for _, tool := range []string{"make", "dpkg-deb", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("needs %s", tool)
			}
			t.Skipf("needs %s (Debian: make, dpkg, git)", tool)
		}
	}
}

// buildPackages runs make package into a temporary directory, once per
// test binary: four cross builds and nfpm take a while.
var builtPackages string

func buildPackages(t *testing.T) string {
	t.Helper()
	needPackageTools(t)
	if builtPackages != "" {
		return builtPackages
	}
	out, err := os.MkdirTemp("", "msdav-package-")
	if err != nil {
		t.Fatal(err)
	}
	var arches []string
	for _, a := range packageArches {
		arches = append(arches, a.nfpm)
	}
	cmd := exec.Command("make", "-C", "..", "package", "PACKAGE_OUT="+out, "PACKAGE_ARCHES="+strings.Join(arches, " "), "PKG_VERSION=1.2.3")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(out)
		if strings.Contains(string(b), "proxy.golang.org") && os.Getenv("CI") != "true" {
			t.Skipf("cannot fetch nfpm from the module proxy:\n%s", b)
		}
		t.Fatalf("make package: %v\n%s", err, b)
	}
	builtPackages = out
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtPackages != "" {
		os.RemoveAll(builtPackages)
	}
	os.Exit(code)
}

// The Debian packages: right architecture names, the files in place, the
// config a conffile (kept on upgrade and on dpkg -r), the binary built for
// the package's machine, the unit pointing at it.
func TestDebianPackages(t *testing.T) {
	dir := buildPackages(t)
	for _, a := range packageArches {
		t.Run(a.deb, func(t *testing.T) {
			deb := filepath.Join(dir, "msdav_1.2.3_"+a.deb+".deb")
			field := func(name string) string {
				b, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
				if err != nil {
					t.Fatalf("dpkg-deb -f %s %s: %v", deb, name, err)
				}
				return strings.TrimSpace(string(b))
			}
			if got := field("Package") + " " + field("Version") + " " + field("Architecture"); got != "msdav 1.2.3 "+a.deb {
				t.Errorf("package, version, architecture = %q", got)
			}
			info, err := exec.Command("dpkg-deb", "-I", deb, "conffiles").Output()
			if err != nil || strings.TrimSpace(string(info)) != "/etc/msdav/msdav.toml" {
				t.Errorf("conffiles = %q (%v), want /etc/msdav/msdav.toml", info, err)
			}
			list, err := exec.Command("dpkg-deb", "-c", deb).Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range packageFiles {
				if !strings.Contains(string(list), " ./"+f+"\n") {
					t.Errorf("%s lacks %s:\n%s", filepath.Base(deb), f, list)
				}
			}
			tarball, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
			if err != nil {
				t.Fatal(err)
			}
			checkPayload(t, tar.NewReader(bytes.NewReader(tarball)), "./", a.machine)
		})
	}
}

// The Arch Linux packages (PiKVM OS): .PKGINFO names the package, Arch's
// architecture and the config as a backup file (kept when edited); .MTREE
// lists the files; the binary is for the package's machine.
func TestArchPackages(t *testing.T) {
	dir := buildPackages(t)
	for _, a := range packageArches {
		t.Run(a.arch, func(t *testing.T) {
			p := filepath.Join(dir, "msdav-1.2.3-1-"+a.arch+".pkg.tar.zst")
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			zr, err := zstd.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			raw, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			meta := map[string][]byte{}
			tr := tar.NewReader(bytes.NewReader(raw))
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(h.Name, ".") {
					meta[h.Name], _ = io.ReadAll(tr)
				}
			}
			info := string(meta[".PKGINFO"])
			for _, line := range []string{"pkgname = msdav", "pkgver = 1.2.3-1", "arch = " + a.arch, "backup = etc/msdav/msdav.toml"} {
				if !strings.Contains(info, "\n"+line+"\n") {
					t.Errorf(".PKGINFO lacks %q:\n%s", line, info)
				}
			}
			gz, err := gzip.NewReader(bytes.NewReader(meta[".MTREE"]))
			if err != nil {
				t.Fatalf(".MTREE: %v", err)
			}
			mtree, err := io.ReadAll(gz)
			if err != nil {
				t.Fatalf(".MTREE: %v", err)
			}
			for _, f := range packageFiles {
				if !strings.Contains(string(mtree), "\n./"+f+" ") {
					t.Errorf(".MTREE lacks %s:\n%s", f, mtree)
				}
			}
			checkPayload(t, tar.NewReader(bytes.NewReader(raw)), "", a.machine)
		})
	}
}

// checkPayload reads a package's files: the binary is an ELF for machine,
// the unit starts it from /usr/bin, the config is the sample's.
func checkPayload(t *testing.T, tr *tar.Reader, prefix string, machine elf.Machine) {
	t.Helper()
	sample, _ := os.ReadFile("msdav.toml")
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, prefix)
		b, _ := io.ReadAll(tr)
		seen[name] = true
		switch name {
		case "usr/bin/msdav":
			if h.Mode&0o111 == 0 {
				t.Errorf("msdav mode %o, not executable", h.Mode)
			}
			e, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("msdav: %v", err)
			}
			if e.Machine != machine {
				t.Errorf("msdav built for %v, want %v", e.Machine, machine)
			}
		case "usr/lib/systemd/system/msdav.service":
			if !strings.Contains(string(b), "\nExecStart=/usr/bin/msdav serve ") || strings.Contains(string(b), "/usr/local/") {
				t.Errorf("the packaged unit does not start /usr/bin/msdav:\n%s", b)
			}
		case "etc/msdav/msdav.toml":
			if !bytes.Equal(b, sample) {
				t.Error("the packaged config is not deploy/msdav.toml")
			}
		}
	}
	if !seen["usr/bin/msdav"] {
		t.Error("no usr/bin/msdav in the payload")
	}
}
