package drives

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/msdav/msdav/gadget/scsi"
)

// A drive served from http://user:pw@host/ shows the URL without the
// password (the API, the console, Redfish and kvmd read State); the state
// file keeps it whole, or the drive could not be put back after a restart.
func TestStateRedactsURLPassword(t *testing.T) {
	r := newRestartable(t)
	open := func(_ context.Context, url string) (scsi.Medium, error) {
		return &urlMedium{url: url, size: 1 << 20}, nil
	}
	m, _ := r.run(open)
	const raw = "http://admin:s3cret@images.example/a.iso"
	med, _ := open(context.Background(), raw)
	st, err := m.Attach(context.Background(), Request{Drive: 0, URL: raw, Medium: med, CDROM: true})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := m.Drive(0)
	for _, u := range []string{st.URL, d.URL} {
		if strings.Contains(u, "s3cret") || !strings.Contains(u, "admin:xxxxx@images.example/a.iso") {
			t.Errorf("drive URL %q", u)
		}
	}
	if b, _ := os.ReadFile(r.state); !strings.Contains(string(b), "s3cret") {
		t.Errorf("the state file lost the password: a restart could not reopen the URL")
	}
}
