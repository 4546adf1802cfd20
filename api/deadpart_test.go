package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msdav/msdav/fs"
	"github.com/msdav/msdav/internal/fusetest"
)

// With a part that stopped answering, the drive API and the catalog still
// answer, and the part is reported unavailable.
func TestDriveAPIWithDeadPart(t *testing.T) {
	dir := tmpfsStore(t, "mounts tmpfs and FUSE", 16)
	os.WriteFile(filepath.Join(dir, "boot.iso"), make([]byte, 4096), 0o644)
	nfs := filepath.Join(dir, "nfs")
	os.Mkdir(nfs, 0o755)
	fusetest.Dead(t, "deadnfs", nfs)
	e := newEnv(t, fakeGadget(t), nil, fs.Options{Root: dir, PartTimeout: 300 * time.Millisecond})
	start := time.Now()
	if code, m := e.call(t, "PUT", "/api/drives/0", `{"image":"boot.iso","cdrom":true}`); code != 200 {
		t.Fatalf("attach with a dead part: %d %v", code, m)
	}
	if code, _ := e.call(t, "GET", "/api/drives", ""); code != 200 {
		t.Fatalf("drives with a dead part: %d", code)
	}
	code, m := e.call(t, "GET", "/api/images", "")
	if code != 200 {
		t.Fatalf("images with a dead part: %d", code)
	}
	found := false
	for _, p := range m["parts"].([]any) {
		p := p.(map[string]any)
		if p["path"] == "nfs" {
			found = p["available"] == false && strings.Contains(p["reason"].(string), "did not answer")
		}
	}
	if !found {
		t.Errorf("dead part not reported unavailable: %v", m["parts"])
	}
	if code, _ := e.call(t, "DELETE", "/api/drives/0", ""); code != 200 {
		t.Errorf("eject with a dead part: %d", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("drive API calls with a dead part took %s", took)
	}
}
