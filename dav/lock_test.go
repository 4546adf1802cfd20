package dav

import (
	"testing"
	"time"

	"golang.org/x/net/webdav"
)

// An UNLOCK that arrives while a request still holds the lock (a client
// that cancelled an upload hangs up and unlocks at once) succeeds, and the
// lock goes when the request ends instead of staying for its timeout.
func TestUnlockWhileHeld(t *testing.T) {
	l := newLockSys()
	now := time.Now()
	tok, err := l.Create(now, webdav.LockDetails{Root: "/a.iso", Duration: time.Hour, ZeroDepth: true})
	if err != nil {
		t.Fatal(err)
	}
	release, err := l.Confirm(now, "/a.iso", "", webdav.Condition{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(now, tok); err != nil {
		t.Fatalf("UNLOCK while held: %v", err)
	}
	if _, err := l.Confirm(now, "/a.iso", "", webdav.Condition{Token: tok}); err == nil {
		t.Error("an unlocked token still confirms")
	}
	if _, err := l.Create(now, webdav.LockDetails{Root: "/a.iso", Duration: time.Hour}); err == nil {
		t.Error("a new lock succeeded while the old one was still held by a request")
	}
	release()
	if _, err := l.Create(now, webdav.LockDetails{Root: "/a.iso", Duration: time.Hour}); err != nil {
		t.Errorf("the lock outlived the request that held it: %v", err)
	}
}
