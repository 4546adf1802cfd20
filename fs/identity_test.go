package fs

import (
	"strings"
	"testing"
)

// A box without box_name keeps its identity across restarts, and two
// stores on one host (one host name) get two.
func TestBoxIdentity(t *testing.T) {
	open := func(root, box string) string {
		s, err := Open(Options{Root: root, Box: box})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.Identity()
	}
	a, b := t.TempDir(), t.TempDir()
	first := open(a, "")
	if again := open(a, ""); again != first {
		t.Errorf("identity changed across a restart: %q then %q", first, again)
	}
	if other := open(b, ""); other == first {
		t.Errorf("two stores on one host share identity %q", first)
	}
	if got := open(a, "rack3-kvm"); got != "rack3-kvm" {
		t.Errorf("with box_name: %q", got)
	}
	if strings.ContainsAny(first, "/\x00") {
		t.Errorf("identity %q cannot name a lease file", first)
	}
}
