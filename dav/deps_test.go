package dav

import (
	"os/exec"
	"strings"
	"testing"
)

// The share serves files; it must not link the USB side. Errors say their
// own status (problem asks them), so no table needs to import the gadget.
func TestShareLinksNoGadget(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v %s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "/msdav/gadget") || strings.HasSuffix(p, "/msdav/drives") {
			t.Errorf("dav depends on %s", p)
		}
	}
}
