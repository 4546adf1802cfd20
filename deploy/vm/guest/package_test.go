//go:build vmguest

package guest

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDebianPackage runs as the VM's vm-check.service under systemd
// (TestDebianPackageVM on the host side): dpkg -i of msdav's .deb, msdav
// started through the packaged unit with the admin's edit of the packaged
// config, an upload and an attach, then dpkg -r and dpkg --purge.
func TestDebianPackage(t *testing.T) {
	if os.Getenv("MSDAV_PACKAGE_VM") == "" {
		t.Skip("runs only under systemd in TestDebianPackageVM")
	}
	cmd := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	const (
		bin  = "/usr/bin/msdav"
		unit = "/usr/lib/systemd/system/msdav.service"
		conf = "/etc/msdav/msdav.toml"
	)

	t.Logf("dpkg -i:\n%s", cmd("dpkg", "-i", "/msdav.deb"))
	for _, p := range []string{bin, unit, conf, "/var/lib/msdav/images", "/usr/share/doc/msdav/README.md"} {
		if !exists(p) {
			t.Errorf("after dpkg -i there is no %s", p)
		}
	}
	if out := cmd("dpkg-query", "-W", "-f", "${Status} ${Conffiles}", "msdav"); !strings.Contains(out, "install ok installed") || !strings.Contains(out, conf) {
		t.Errorf("dpkg-query: %q", out)
	}
	// Installed, not started: the gadget wants the admin's config first.
	if out, _ := exec.Command("/bin/systemctl", "is-active", "msdav").Output(); strings.TrimSpace(string(out)) != "inactive" {
		t.Errorf("msdav is %q right after dpkg -i, want inactive", out)
	}

	// The admin's edit of the packaged config: this VM's UDC.
	sample, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.NewReplacer(`mode = "auto"`, `mode = "configfs"`, `udc = ""`, `udc = "dummy_udc.0"`).Replace(string(sample))
	if edited == string(sample) {
		t.Fatal("the packaged config has no mode/udc lines to edit")
	}
	if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd("/bin/systemctl", "start", "msdav")
	b := &box{name: "package", base: "http://127.0.0.1:8080"}
	b.waitAnswers(t, "msdav started by the packaged unit", "/healthz", 60*time.Second)
	if exe, err := os.Readlink("/proc/" + msdavPID(t) + "/exe"); err != nil || exe != bin {
		t.Errorf("the running msdav is %q (%v), want the packaged %s", exe, err, bin)
	}
	iso, err := os.ReadFile("/fixtures/test.iso")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := b.do(t, "PUT", "/dav/test.iso", string(iso)); code != 201 {
		t.Fatalf("upload: %d %s", code, out)
	}
	if code, out := b.do(t, "PUT", "/api/drives/0", `{"image":"test.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach: %d %s", code, out)
	}
	dev, _ := waitBlockOnBus(t, "the CD on the USB host", "usb1", int64(len(iso)), 60*time.Second)
	got, err := os.ReadFile(dev)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(iso) {
		t.Fatalf("the USB host's %s differs from the image (%v)", dev, err)
	}
	if code, out := b.do(t, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Fatalf("eject: %d %s", code, out)
	}

	// dpkg -r stops msdav and takes the binary and the unit; the edited
	// config and the images stay.
	t.Logf("dpkg -r:\n%s", cmd("dpkg", "-r", "msdav"))
	if out, _ := exec.Command("/bin/systemctl", "is-active", "msdav").Output(); strings.TrimSpace(string(out)) == "active" {
		t.Error("msdav still runs after dpkg -r")
	}
	for _, p := range []string{bin, unit} {
		if exists(p) {
			t.Errorf("%s is left after dpkg -r", p)
		}
	}
	if b, err := os.ReadFile(conf); err != nil || !bytes.Equal(b, []byte(edited)) {
		t.Errorf("dpkg -r did not keep the edited config: %v", err)
	}
	if !exists("/var/lib/msdav/images/test.iso") {
		t.Error("dpkg -r took the uploaded image")
	}
	t.Logf("dpkg --purge:\n%s", cmd("dpkg", "--purge", "msdav"))
	if exists(conf) {
		t.Error("the config is left after dpkg --purge")
	}
	if out, _ := exec.Command("dpkg-query", "-W", "msdav").CombinedOutput(); !strings.Contains(string(out), "no packages found") {
		t.Errorf("dpkg still knows msdav after --purge: %s", out)
	}
}
