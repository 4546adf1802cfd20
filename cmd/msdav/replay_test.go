package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msdav/msdav/dav/davtest"
	"github.com/msdav/msdav/gadget/gadgettest"
	"golang.org/x/crypto/bcrypt"
)

// The replays: what Windows' WebDAV redirector and macOS Finder send,
// reconstructed from public captures (each transcript names its sources),
// played byte for byte against msdav as `msdav serve` runs it, and against
// Apache mod_dav as a reference. dav/testdata/replay/README.md says more.

const replayDir = "../../dav/testdata/replay"

var recordApache = flag.Bool("record-apache", false, "rewrite dav/testdata/replay/"+davtest.ResultsFile+" from this run's Apache answers")

func loadTranscripts(t *testing.T) []*davtest.Transcript {
	t.Helper()
	trs, err := davtest.Load(replayDir)
	if err != nil {
		t.Fatal(err)
	}
	return trs
}

// TestReplayMsdav plays every transcript against `msdav serve` with a
// drive on a fake configfs, and fails on every difference from what the
// clients rely on.
func TestReplayMsdav(t *testing.T) {
	for _, tr := range loadTranscripts(t) {
		t.Run(tr.Name, func(t *testing.T) {
			if !davtest.NeedsMet(t, tr) {
				return
			}
			cfg := testConfig(t)
			cfg.Gadget = gadgettest.Bound(t, 1)
			if tr.Needs("root") {
				davtest.SmallStore(t, cfg.Storage.Root)
			}
			if tr.Needs("auth") {
				h, _ := bcrypt.GenerateFromPassword([]byte(davtest.Pass), bcrypt.MinCost)
				cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
				os.WriteFile(cfg.Auth.Htpasswd, []byte(davtest.User+":"+string(h)+"\n"), 0o600)
			}
			base, _ := startServe(t, cfg)
			tg := davtest.Target{Addr: strings.TrimPrefix(base, "http://"), Root: cfg.Storage.Root, API: base}
			tg.Attach = func(t testing.TB, rel string, drive int) {
				body := fmt.Sprintf(`{"image": %q, "cdrom": true}`, rel)
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/api/drives/%d", base, drive), strings.NewReader(body))
				req.SetBasicAuth(davtest.User, davtest.Pass)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("attach %s to drive %d: %d %s", rel, drive, resp.StatusCode, b)
				}
			}
			davtest.Play(t, tr, tg, true)
		})
	}
}

// TestReplayApache plays the same transcripts against Apache mod_dav and
// compares what it answered with apache-results.txt, the recorded
// reference; README.md beside it says, for each difference from what the
// clients rely on, why msdav's answer is the right one. Run with
// -record-apache (as root) to rewrite the file after changing a transcript.
func TestReplayApache(t *testing.T) {
	if *recordApache && os.Geteuid() != 0 {
		t.Fatal("record as root, so the full-store transcripts are in the file")
	}
	got := []string{
		"# Apache mod_dav's answers to the replay transcripts, written by",
		"# go test ./cmd/msdav -run TestReplayApache -record-apache",
		"# Each line: transcript:line request -> status; how the answer differs from",
		"# what the transcript expects (which msdav answers). README.md explains each.",
	}
	skipped := map[string]bool{}
	for _, tr := range loadTranscripts(t) {
		skipped[tr.Name] = true
		t.Run(tr.Name, func(t *testing.T) {
			if !davtest.NeedsMet(t, tr) {
				return
			}
			// StartApache skips without apache2: only a transcript Apache
			// really played counts as not skipped.
			tg := davtest.StartApache(t, tr.Needs("root"), tr.Needs("auth"))
			skipped[tr.Name] = false
			got = append(got, davtest.Play(t, tr, tg, false)...)
		})
	}
	text := strings.Join(got, "\n") + "\n"
	results := filepath.Join(replayDir, davtest.ResultsFile)
	if *recordApache {
		if err := os.WriteFile(results, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(results)
	if err != nil {
		t.Fatalf("%v (record it with -record-apache)", err)
	}
	// Transcripts skipped here (not root) are left out of the comparison.
	var kept []string
	for _, l := range strings.Split(strings.TrimSuffix(string(want), "\n"), "\n") {
		name, _, _ := strings.Cut(l, ":")
		if !skipped[name] {
			kept = append(kept, l)
		}
	}
	if wantText := strings.Join(kept, "\n") + "\n"; wantText != text {
		t.Errorf("Apache answered differently from %s; if a transcript changed, rerun with -record-apache and explain new differences in README.md:\n%s", results, davtest.LineDiff(wantText, text))
	}
}
