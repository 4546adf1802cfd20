package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/gadget/gadgettest"
	"github.com/msdav/msdav/internal/fusetest"
	"github.com/msdav/msdav/web"
	"golang.org/x/crypto/bcrypt"
)

// browser starts a headless Chromium for one test; CI installs the Debian
// package, so there its absence fails, elsewhere it skips.
func browser(t *testing.T) context.Context {
	t.Helper()
	var exe string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (.ci/run installs it)")
		}
		t.Skip("needs chromium (Debian package) for the browser tests; skipping")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// typeKeys is chromedp.SendKeys without its data race: SendKeys (v0.23.0,
// the newest) reads the node's attributes before it locks the node, while
// chromedp's event loop rewrites them as the page changes the node (the
// race detector failed CI on 2026-11-26, typing into a field just
// cleared). Focus and KeyEvent do what SendKeys does for a field that is
// not a file input, and read no attributes.
func typeKeys[S chromedp.Selectable](sel S, keys string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Focus(sel, chromedp.NodeVisible), chromedp.KeyEvent(keys))
}

// do runs browser steps and fails the test with what was being done and
// what the page showed then.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main')?.innerText || ''`))
		t.Fatalf("%s: %v\npage:\n%s", what, err, shown)
	}
}

// eval returns a JavaScript expression's value in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is truthy or d passes.
func waitFor(t *testing.T, ctx context.Context, what, js string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		// Short polls, each in the page's current JavaScript context: a
		// navigation replaces it, and a poll left waiting for minutes was
		// seen to miss its condition.
		left := min(d-time.Since(start), 2*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(left), chromedp.WithPollingInterval(20*time.Millisecond)))
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) >= d || ctx.Err() != nil {
			t.Fatalf("%s: not seen within %s (%v)", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lunAttr(cfg conf.Gadget, drive int, attr string) string {
	b, _ := os.ReadFile(filepath.Join(gadgettest.LUN(cfg, drive), attr))
	return strings.TrimSpace(string(b))
}

// The console in a real browser against the whole server with a fake
// configfs: the store with folders and parts, an upload through the page's
// file input, attach and eject from the page, a host-side eject seen
// without a reload, and a cross-site form refused.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	cfg := testConfig(t)
	cfg.Gadget = gadgettest.Bound(t, 2)
	cfg.Gadget.Mode = conf.ModeConfigfs
	root := cfg.Storage.Root
	for _, d := range []string{"isos", "flash", "empty"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "isos", "debian-13.iso"), make([]byte, 3<<20), 0o644)
	os.WriteFile(filepath.Join(root, "isos", "win11.iso"), make([]byte, 5<<20), 0o644)
	os.WriteFile(filepath.Join(root, "flash", "tools.img"), make([]byte, 2<<20), 0o644)
	base, _ := startServe(t, cfg)

	// Time to first render on loopback: the first visit (empty cache) and
	// the median of five more (revalidated by ETag).
	var fcps, readys []float64
	var weight float64
	for i := 0; i < 6; i++ {
		step := chromedp.Navigate(base + "/")
		if i > 0 {
			step = chromedp.Reload()
		}
		do(t, ctx, "open the console", step)
		waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1'`, 10*time.Second)
		if i == 0 { // later visits revalidate and transfer no bodies
			weight = eval[float64](t, ctx, `performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).filter(e => !e.name.includes('/api/') && !e.name.includes('/dav/')).reduce((n, e) => n + e.decodedBodySize, 0)`)
		}
		waitFor(t, ctx, "the first paint recorded", `performance.getEntriesByName('first-contentful-paint').length > 0`, 5*time.Second)
		fcps = append(fcps, eval[float64](t, ctx, `performance.getEntriesByName('first-contentful-paint')[0].startTime`))
		readys = append(readys, eval[float64](t, ctx, `performance.getEntriesByName('msdav-ready')[0].startTime`))
	}
	median := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	t.Logf("page weight %.0f bytes (%d embedded); first visit: first paint %.0f ms, drives and images shown %.0f ms; later visits (median of 5): %.0f ms and %.0f ms",
		weight, web.New().Size(), fcps[0], readys[0], median(fcps[1:]), median(readys[1:]))
	if weight > 100<<10 {
		t.Errorf("the page weighs %.0f bytes, over 100 KiB", weight)
	}
	if others := eval[[]string](t, ctx, `performance.getEntriesByType('resource').map(e => e.name).filter(n => new URL(n).origin !== location.origin)`); len(others) > 0 {
		t.Errorf("the page asked other hosts: %v", others)
	}

	t.Run("store with folders and parts", func(t *testing.T) {
		waitFor(t, ctx, "three folders", `document.querySelectorAll('#entries li.folder').length === 3`, 5*time.Second)
		names := eval[[]string](t, ctx, `[...document.querySelectorAll('#entries li.folder .name button')].map(b => b.textContent)`)
		if strings.Join(names, ",") != "empty/,flash/,isos/" {
			t.Errorf("folders listed: %v", names)
		}
		parts := eval[string](t, ctx, `document.getElementById('parts').textContent`)
		if !strings.Contains(parts, "Store root") || !strings.Contains(parts, "free of") {
			t.Errorf("parts: %q", parts)
		}
		do(t, ctx, "open isos/", chromedp.Click(chromedp.CSS(`button[data-k="open:isos"]`)))
		waitFor(t, ctx, "isos/ listing", `document.querySelectorAll('#entries li.file').length === 2`, 5*time.Second)
		row := eval[string](t, ctx, `document.querySelector('li[data-path="isos/win11.iso"]').textContent`)
		if !strings.Contains(row, "win11.iso") || !strings.Contains(row, "5.0 MiB") {
			t.Errorf("win11.iso row: %q", row)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#drives li.drive').length`); n != 2 {
			t.Errorf("%d drives shown, want 2", n)
		}
	})

	t.Run("upload canceled midway leaves nothing", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "cancel.img")
		f, _ := os.Create(src)
		f.Truncate(512 << 20) // sparse: cheap to make, slow enough to cancel
		f.Close()
		do(t, ctx, "open the store root", chromedp.Navigate(base+"/#"), chromedp.Reload())
		waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1'`, 10*time.Second)
		// Press Cancel from inside the page at the first progress event:
		// a round trip through DevTools could come after the last byte.
		do(t, ctx, "arm the cancel", chromedp.Evaluate[chromedp.Void](`new MutationObserver((_, o) => {
			const li = document.querySelector('li[data-upload="cancel.img"]');
			if (li && li.dataset.events && !li.dataset.stats) { li.dataset.stats = li.querySelector('.status').textContent; li.querySelector('button').click(); o.disconnect(); }
		}).observe(document.getElementById('uploads'), {subtree: true, attributes: true, childList: true})`))
		do(t, ctx, "pick the file", chromedp.SetUploadFiles(chromedp.CSS("#pick"), []string{src}))
		waitFor(t, ctx, "the upload canceled", `document.querySelector('li[data-upload="cancel.img"]')?.classList.contains('canceled')`, 30*time.Second)
		stats := eval[string](t, ctx, `document.querySelector('li[data-upload="cancel.img"]').dataset.stats`)
		if !strings.Contains(stats, "/s") || !strings.Contains(stats, "left") {
			t.Errorf("status while running, want speed and time left: %q", stats)
		}
		if st := eval[string](t, ctx, `document.querySelector('li[data-upload="cancel.img"] .status').textContent`); !strings.Contains(st, "nothing was stored") {
			t.Errorf("status after cancel: %q", st)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			ents, _ := os.ReadDir(root)
			var left []string
			for _, e := range ents {
				if strings.Contains(e.Name(), "cancel") || strings.HasPrefix(e.Name(), ".msdav-upload") {
					left = append(left, e.Name())
				}
			}
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a canceled upload left %v", left)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("an upload from elsewhere shown growing", func(t *testing.T) {
		do(t, ctx, "open isos/", chromedp.Navigate(base+"/#isos"), chromedp.Reload())
		waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1' && document.getElementById('live').classList.contains('on')`, 10*time.Second)
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("PUT", base+"/dav/isos/growing.iso", pr)
		req.ContentLength = 8 << 20
		done := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 201 && resp.StatusCode != 204 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			done <- err
		}()
		t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
		growing := `(() => { const p = document.querySelector('li[data-path="isos/growing.iso"] progress'); return p && p.max === 8*1048576 ? p.value : 0; })()`
		// Events come at most a few times a second while bytes arrive.
		sent := 0
		for ; sent < 6<<20 && eval[float64](t, ctx, growing) < 2<<20; sent += 256 << 10 {
			pw.Write(make([]byte, 256<<10))
			time.Sleep(50 * time.Millisecond)
		}
		if v := eval[float64](t, ctx, growing); v < 2<<20 {
			t.Fatalf("the upload is not shown growing: %.0f bytes shown after %d sent; row: %q", v, sent,
				eval[string](t, ctx, `document.querySelector('li[data-path="isos/growing.iso"]')?.textContent || 'none'`))
		}
		pw.Write(make([]byte, 8<<20-sent))
		pw.Close()
		if err := <-done; err != nil {
			t.Fatalf("PUT: %v", err)
		}
		waitFor(t, ctx, "the upload shown complete", `(() => { const r = document.querySelector('li[data-path="isos/growing.iso"]'); return r && !r.querySelector('progress') && r.textContent.includes('8.0 MiB'); })()`, 5*time.Second)
		os.Remove(filepath.Join(root, "isos", "growing.iso"))
	})

	t.Run("upload through the file input", func(t *testing.T) {
		data := make([]byte, 96<<20)
		rand.Read(data)
		src := filepath.Join(t.TempDir(), "upload.img")
		os.WriteFile(src, data, 0o644)
		do(t, ctx, "go to the store root", chromedp.Navigate(base+"/#"), chromedp.Reload())
		waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1'`, 10*time.Second)
		do(t, ctx, "pick the file", chromedp.SetUploadFiles(chromedp.CSS("#pick"), []string{src}))
		took := waitFor(t, ctx, "the upload done", `document.querySelector('li[data-upload="upload.img"]')?.classList.contains('done')`, 60*time.Second)
		events := eval[string](t, ctx, `document.querySelector('li[data-upload="upload.img"]').dataset.events`)
		status := eval[string](t, ctx, `document.querySelector('li[data-upload="upload.img"] .status').textContent`)
		t.Logf("96 MiB through the page in %s, %s progress events, status %q", took.Round(time.Millisecond), events, status)
		if events == "" || events == "0" {
			t.Error("no upload progress seen")
		}
		got, err := os.ReadFile(filepath.Join(root, "upload.img"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("uploaded file differs (%d of %d bytes, %v)", len(got), len(data), err)
		}
		waitFor(t, ctx, "the new image listed", `!!document.querySelector('li.file[data-path="upload.img"]')`, 5*time.Second)
	})

	t.Run("two files dropped from the desktop", func(t *testing.T) {
		dir := t.TempDir()
		want := map[string][]byte{"drop-a.img": make([]byte, 3<<20), "drop-b.iso": make([]byte, 5<<20)}
		var paths []string
		for name, b := range want {
			rand.Read(b)
			paths = append(paths, filepath.Join(dir, name))
			os.WriteFile(paths[len(paths)-1], b, 0o644)
		}
		do(t, ctx, "open flash/", chromedp.Navigate(base+"/#flash"), chromedp.Reload())
		waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1'`, 10*time.Second)
		xy := eval[[]float64](t, ctx, `(() => { const r = document.getElementById('drop').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`)
		data := &input.DragData{Files: paths, DragOperationsMask: 1}
		for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
			if _, err := chromedp.Call(ctx, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: xy[0], Y: xy[1], Data: data}); err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
		}
		waitFor(t, ctx, "both uploads done", `['flash/drop-a.img', 'flash/drop-b.iso'].every(p => document.querySelector('li[data-upload="' + p + '"]')?.classList.contains('done'))`, 30*time.Second)
		for name, b := range want {
			if got, err := os.ReadFile(filepath.Join(root, "flash", name)); err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s dropped: %d bytes, %v", name, len(got), err)
			}
		}
		// Download gives the same bytes back.
		href := eval[string](t, ctx, `document.querySelector('li.file[data-path="flash/drop-a.img"] a').getAttribute('href')`)
		resp, err := http.Get(base + href)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, want["drop-a.img"]) {
			t.Errorf("download link %s gave %d bytes, not the file", href, len(got))
		}
	})

	t.Run("attach and eject from the page", func(t *testing.T) {
		do(t, ctx, "open isos/", chromedp.Navigate(base+"/#isos"), chromedp.Reload())
		waitFor(t, ctx, "isos/ listing", `!!document.querySelector('button[data-k="at:isos/win11.iso"]')`, 5*time.Second)
		do(t, ctx, "attach win11.iso to drive 1",
			chromedp.Click(chromedp.CSS(`button[data-k="at:isos/win11.iso"]`)),
			chromedp.WaitVisible(chromedp.ID("attach-dlg")),
			chromedp.SetValue(chromedp.ID("attach-drive"), "1"),
			chromedp.Click(chromedp.CSS(`#attach-dlg button.primary`)),
			chromedp.WaitNotVisible(chromedp.ID("attach-dlg")))
		want := filepath.Join(root, "isos", "win11.iso")
		if f, cd, ro := lunAttr(cfg.Gadget, 1, "file"), lunAttr(cfg.Gadget, 1, "cdrom"), lunAttr(cfg.Gadget, 1, "ro"); f != want || cd != "1" || ro != "1" {
			t.Fatalf("configfs after attach: file %q cdrom %s ro %s; want %s as a read-only CD", f, cd, ro, want)
		}
		waitFor(t, ctx, "drive 1 shown with the image", `document.querySelector('li[data-drive="1"]').textContent.includes('isos/win11.iso')`, 2*time.Second)
		waitFor(t, ctx, "the image marked as in drive 1", `document.querySelector('li[data-path="isos/win11.iso"]').textContent.includes('in drive 1')`, 2*time.Second)
		do(t, ctx, "eject drive 1", chromedp.Click(chromedp.CSS(`button[data-k="eject1"]`)))
		waitFor(t, ctx, "drive 1 shown empty", `document.querySelector('li[data-drive="1"]').textContent.includes('No image')`, 2*time.Second)
		if f := lunAttr(cfg.Gadget, 1, "file"); f != "" {
			t.Fatalf("configfs after eject: file %q", f)
		}
		// USB reconnect: confirmed, then the UDC unbound and bound again.
		udc := filepath.Join(cfg.Gadget.Configfs, "usb_gadget", cfg.Gadget.Name, "UDC")
		os.WriteFile(udc, []byte("\n"), 0o644) // so a rebind shows
		do(t, ctx, "USB reconnect",
			chromedp.Click(chromedp.ID("reconnect")),
			chromedp.WaitVisible(chromedp.ID("ask-ok")),
			chromedp.Click(chromedp.ID("ask-ok")),
			chromedp.WaitNotVisible(chromedp.ID("ask-dlg")))
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if b, _ := os.ReadFile(udc); strings.TrimSpace(string(b)) != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("UDC not bound again after reconnect; drives error: %q", eval[string](t, ctx, `document.getElementById('drives-error').textContent`))
			}
		}
	})

	t.Run("force eject when the host holds the medium locked", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", base+"/api/drives/1", strings.NewReader(`{"image":"flash/tools.img","cdrom":false}`))
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("attach by API: %v %v", err, resp)
		}
		waitFor(t, ctx, "drive 1 shown with tools.img", `document.querySelector('li[data-drive="1"]').textContent.includes('flash/tools.img')`, 3*time.Second)
		// A fake configfs cannot refuse like the kernel does (EBUSY while
		// the host's OS prevents removal): answer the plain eject with the
		// API's 409 in the browser, and let the forced one through.
		ictx, stopIntercept := context.WithCancel(ctx)
		defer stopIntercept()
		paused := chromedp.Events(ictx, fetch.RequestPaused)
		if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/api/drives/1*"}}}); err != nil {
			t.Fatal(err)
		}
		defer chromedp.Call(ctx, fetch.Disable, cdp.Empty{})
		go func() {
			for ev, err := range paused {
				if err != nil {
					return
				}
				if ev.Request.Method == "DELETE" && !strings.Contains(ev.Request.URL, "force=1") {
					chromedp.Call(ictx, fetch.FulfillRequest, fetch.FulfillRequestParams{
						RequestID: ev.RequestID, ResponseCode: 409,
						ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "application/json"}},
						Body:            []byte(`{"error":"drive 1: the host has locked the medium; eject it on the host, or DELETE with ?force=1 to break the lock"}`),
					})
					continue
				}
				chromedp.Call(ictx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
			}
		}()
		do(t, ctx, "eject drive 1", chromedp.Click(chromedp.CSS(`button[data-k="eject1"]`)))
		waitFor(t, ctx, "the lock explained and force offered", `(document.querySelector('li[data-drive="1"] .error')?.textContent || '').includes('holds this medium locked') && !!document.querySelector('button[data-k="force1"]')`, 3*time.Second)
		if f := lunAttr(cfg.Gadget, 1, "file"); f == "" {
			t.Fatal("the refused eject emptied the drive")
		}
		do(t, ctx, "force eject drive 1", chromedp.Click(chromedp.CSS(`button[data-k="force1"]`)))
		waitFor(t, ctx, "drive 1 shown empty", `document.querySelector('li[data-drive="1"]').textContent.includes('No image') && !document.querySelector('button[data-k="force1"]')`, 3*time.Second)
		if f := lunAttr(cfg.Gadget, 1, "file"); f != "" {
			t.Fatalf("configfs after force eject: file %q", f)
		}
	})

	t.Run("host-side eject shows without reload", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", base+"/api/drives/0", strings.NewReader(`{"image":"flash/tools.img","cdrom":false}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("attach by API: %v %v", err, resp)
		}
		resp.Body.Close()
		waitFor(t, ctx, "drive 0 shown with tools.img", `document.querySelector('li[data-drive="0"]').textContent.includes('flash/tools.img')`, 3*time.Second)
		// Through the event stream, not the page's fallback polling.
		waitFor(t, ctx, "the page following /api/events", `document.getElementById('live').classList.contains('on')`, 3*time.Second)
		lun := filepath.Join(gadgettest.LUN(cfg.Gadget, 0), "file")
		os.WriteFile(lun, []byte("\n"), 0o644) // what the kernel does when the host ejects
		took := waitFor(t, ctx, "drive 0 shown empty", `document.querySelector('li[data-drive="0"]').textContent.includes('No image')`, 2*time.Second)
		t.Logf("host-side eject shown after %s", took.Round(time.Millisecond))
	})

	t.Run("cross-site form refused", func(t *testing.T) {
		// The classic attack: another site's page posts a form whose
		// text/plain body happens to be valid JSON. No preflight protects it.
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<form id="f" method="POST" enctype="text/plain" action="%s/api/images">`+
				`<input name='{"path":"evil.img","size":"1M","fs":"none","label":"' value='"}'></form>`, base)
		}))
		defer evil.Close()
		do(t, ctx, "submit the other site's form",
			chromedp.Navigate(evil.URL),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('f').submit()`))
		waitFor(t, ctx, "msdav's answer", `location.href.includes('/api/images') && document.readyState === 'complete'`, 5*time.Second)
		if _, err := os.Stat(filepath.Join(root, "evil.img")); err == nil {
			t.Fatal("a cross-site form created evil.img")
		}
		if body := eval[string](t, ctx, `document.body.textContent`); !strings.Contains(body, "refused") {
			t.Errorf("the browser got %q, not the refusal", body)
		}
	})

	t.Run("folder, rename, delete, blank image by keyboard and dialogs", func(t *testing.T) {
		do(t, ctx, "open isos/", chromedp.Navigate(base+"/#isos"), chromedp.Reload())
		waitFor(t, ctx, "isos/ listing", `document.body.dataset.ready === '1' && !!document.querySelector('button[data-k="mv:isos/win11.iso"]')`, 10*time.Second)

		// New folder: the dialog's field, Enter submits.
		do(t, ctx, "new folder",
			typeKeys(chromedp.ID("mkdir"), kb.Enter),
			chromedp.WaitVisible(chromedp.ID("ask-input")),
			typeKeys(chromedp.ID("ask-input"), "old"+kb.Enter),
			chromedp.WaitNotVisible(chromedp.ID("ask-dlg")))
		if fi, err := os.Stat(filepath.Join(root, "isos", "old")); err != nil || !fi.IsDir() {
			t.Fatalf("new folder isos/old: %v", err)
		}
		waitFor(t, ctx, "isos/old listed", `!!document.querySelector('li.folder[data-path="isos/old"]')`, 3*time.Second)

		// Rename/move into that folder, all from the keyboard.
		do(t, ctx, "move win11.iso",
			typeKeys(chromedp.CSS(`button[data-k="mv:isos/win11.iso"]`), kb.Enter),
			chromedp.WaitVisible(chromedp.ID("ask-input")),
			chromedp.Clear(chromedp.ID("ask-input")),
			typeKeys(chromedp.ID("ask-input"), "isos/old/win-11.iso"+kb.Enter),
			chromedp.WaitNotVisible(chromedp.ID("ask-dlg")))
		if _, err := os.Stat(filepath.Join(root, "isos", "old", "win-11.iso")); err != nil {
			t.Fatalf("after the move: %v", err)
		}
		waitFor(t, ctx, "win11.iso gone from the listing", `!document.querySelector('li.file[data-path="isos/win11.iso"]')`, 3*time.Second)

		// Delete of an attached image: confirmed, refused with 423, explained.
		req, _ := http.NewRequest("PUT", base+"/api/drives/0", strings.NewReader(`{"image":"isos/debian-13.iso","cdrom":true}`))
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("attach by API: %v %v", err, resp)
		}
		waitFor(t, ctx, "debian-13.iso in drive 0", `document.querySelector('li[data-path="isos/debian-13.iso"]').textContent.includes('in drive 0')`, 3*time.Second)
		do(t, ctx, "delete debian-13.iso",
			chromedp.Click(chromedp.CSS(`button[data-k="rm:isos/debian-13.iso"]`)),
			chromedp.WaitVisible(chromedp.ID("ask-ok")),
			chromedp.Click(chromedp.ID("ask-ok")))
		waitFor(t, ctx, "the 423 explained next to the image", `(document.querySelector('li[data-path="isos/debian-13.iso"] .error')?.textContent || '').includes('Eject it from its drive first')`, 3*time.Second)
		msg := eval[string](t, ctx, `document.querySelector('li[data-path="isos/debian-13.iso"] .error').textContent`)
		if !strings.Contains(msg, "drive 0") {
			t.Errorf("423 message does not name the drive: %q", msg)
		}
		if _, err := os.Stat(filepath.Join(root, "isos", "debian-13.iso")); err != nil {
			t.Fatalf("an attached image was deleted: %v", err)
		}

		// Blank flash image in the current folder.
		do(t, ctx, "blank image",
			chromedp.Click(chromedp.ID("blank")),
			chromedp.WaitVisible(chromedp.ID("blank-dlg")),
			chromedp.SetValue(chromedp.CSS(`#blank-dlg input[name=name]`), "tools2.img"),
			chromedp.SetValue(chromedp.CSS(`#blank-dlg input[name=size]`), "8M"),
			chromedp.SetValue(chromedp.CSS(`#blank-dlg select[name=fs]`), "none"),
			chromedp.Click(chromedp.CSS(`#blank-dlg button.primary`)),
			chromedp.WaitNotVisible(chromedp.ID("blank-dlg")))
		if fi, err := os.Stat(filepath.Join(root, "isos", "tools2.img")); err != nil || fi.Size() != 8<<20 {
			t.Fatalf("blank image: %v %v", fi, err)
		}
		waitFor(t, ctx, "tools2.img listed", `!!document.querySelector('li.file[data-path="isos/tools2.img"]')`, 3*time.Second)

		// The same name again: the API's 409 shown in the dialog, which stays open.
		do(t, ctx, "blank image again",
			chromedp.Click(chromedp.ID("blank")),
			chromedp.WaitVisible(chromedp.ID("blank-dlg")),
			chromedp.SetValue(chromedp.CSS(`#blank-dlg input[name=name]`), "tools2.img"),
			chromedp.Click(chromedp.CSS(`#blank-dlg button.primary`)))
		waitFor(t, ctx, "the conflict explained", `!document.querySelector('#blank-dlg .error').hidden && document.getElementById('blank-dlg').open`, 3*time.Second)
		do(t, ctx, "close with Cancel", chromedp.Click(chromedp.CSS(`#blank-dlg button[value=cancel]`)), chromedp.WaitNotVisible(chromedp.ID("blank-dlg")))
	})

	t.Run("screenshots", func(t *testing.T) {
		dir := os.Getenv("MSDAV_SCREENSHOTS") // set to keep them (docs/console.png comes from here)
		if dir == "" {
			dir = t.TempDir()
		}
		for _, a := range []struct{ drive, body string }{
			{"0", `{"image":"isos/debian-13.iso","cdrom":true}`},
			{"1", `{"image":"upload.img","cdrom":false,"rw":true}`},
		} {
			req, _ := http.NewRequest("PUT", base+"/api/drives/"+a.drive, strings.NewReader(a.body))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		for _, v := range []struct {
			name          string
			width, height int64
			mobile        bool
		}{{"console.png", 1280, 900, false}, {"console-phone.png", 390, 844, true}} {
			emu := chromedp.EmulateViewport(v.width, v.height)
			if v.mobile {
				emu = chromedp.EmulateViewport(v.width, v.height, chromedp.EmulateMobile, chromedp.EmulateScale(2))
			}
			do(t, ctx, "load at "+v.name, emu, chromedp.Navigate(base+"/#"), chromedp.Reload())
			waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1' && document.querySelectorAll('#entries li.folder').length >= 3`, 10*time.Second)
			if v.mobile {
				if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > int(v.width) {
					t.Errorf("at phone width the page is %d px wide, wider than the %d px screen", w, v.width)
				}
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil || len(png) < 1000 {
				t.Fatalf("screenshot %s: %v", v.name, err)
			}
			os.WriteFile(filepath.Join(dir, v.name), png, 0o644)
		}
		// The attach chooser at phone width, as it was left by the loop.
		do(t, ctx, "open the attach chooser",
			chromedp.Click(chromedp.CSS(`button[data-k="attach1"]`)),
			chromedp.WaitVisible(chromedp.ID("attach-dlg")))
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot of the chooser: %v", err)
		}
		os.WriteFile(filepath.Join(dir, "console-attach-phone.png"), png, 0o644)
		do(t, ctx, "close it with Escape", chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(chromedp.ID("attach-dlg")))
	})
}

// With [auth] on, the page loads with the browser's Basic credentials and
// its own API calls and event stream go through with them.
func TestConsoleWithBasicAuth(t *testing.T) {
	ctx := browser(t)
	cfg := testConfig(t)
	h, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("admin:"+string(h)+"\n"), 0o600)
	os.WriteFile(filepath.Join(cfg.Storage.Root, "a.iso"), make([]byte, 4096), 0o644)
	base, _ := startServe(t, cfg)
	resp, err := http.Get(base + "/")
	if err != nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("GET / without credentials: %v %v", err, resp)
	}
	resp.Body.Close()
	u := strings.Replace(base, "http://", "http://admin:s3cret@", 1)
	do(t, ctx, "open the console with credentials", chromedp.Navigate(u+"/"))
	waitFor(t, ctx, "the image listed", `document.body.dataset.ready === '1' && !!document.querySelector('li.file[data-path="a.iso"]')`, 10*time.Second)
	if e := eval[string](t, ctx, `document.getElementById('images-error').textContent`); e != "" {
		t.Errorf("images error with auth: %q", e)
	}
	src := filepath.Join(t.TempDir(), "b.img")
	os.WriteFile(src, []byte("written with the page's credentials"), 0o644)
	do(t, ctx, "upload with auth", chromedp.SetUploadFiles(chromedp.CSS("#pick"), []string{src}))
	waitFor(t, ctx, "the upload done", `document.querySelector('li[data-upload="b.img"]')?.classList.contains('done')`, 10*time.Second)
	if b, _ := os.ReadFile(filepath.Join(cfg.Storage.Root, "b.img")); string(b) != "written with the page's credentials" {
		t.Errorf("upload with auth stored %q", b)
	}
	// Drives are off here: the page says why instead of staying blank.
	if e := eval[string](t, ctx, `document.getElementById('drives-error').textContent`); !strings.Contains(e, "no USB drives") {
		t.Errorf("drives section with the gadget disabled: %q", e)
	}
}

// A full part answers 507 before the body is sent; the page says so in
// words, and the part shows as its own folder with its free space.
func TestConsoleUploadFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a small tmpfs as a part of the store")
	}
	ctx := browser(t)
	cfg := testConfig(t)
	small := filepath.Join(cfg.Storage.Root, "small")
	os.MkdirAll(small, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", small).Run() })
	ro := filepath.Join(cfg.Storage.Root, "library")
	os.MkdirAll(ro, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", ro).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", ro).Run() })
	base, _ := startServe(t, cfg)
	do(t, ctx, "open small/", chromedp.Navigate(base+"/#small"))
	waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1'`, 10*time.Second)
	parts := eval[string](t, ctx, `document.getElementById('parts').textContent`)
	if !strings.Contains(parts, "small/") || !strings.Contains(parts, "tmpfs") || !strings.Contains(parts, "free of 4.0 MiB") {
		t.Errorf("parts: %q", parts)
	}
	t.Logf("parts as shown: %q", parts)
	// A read-only part says why, on its own row.
	if why := eval[string](t, ctx, `document.querySelector('li.part[data-part="library"]')?.textContent || ''`); !strings.Contains(why, "read-only: ") {
		t.Errorf("read-only part: %q", why)
	}
	src := filepath.Join(t.TempDir(), "big.img")
	os.WriteFile(src, make([]byte, 16<<20), 0o644)
	do(t, ctx, "pick the file", chromedp.SetUploadFiles(chromedp.CSS("#pick"), []string{src}))
	waitFor(t, ctx, "the upload failed", `document.querySelector('li[data-upload="small/big.img"]')?.classList.contains('failed')`, 20*time.Second)
	status := eval[string](t, ctx, `document.querySelector('li[data-upload="small/big.img"] .status').textContent`)
	if !strings.Contains(status, "Not enough space") {
		t.Errorf("status after a 507: %q", status)
	}
	if _, err := os.Stat(filepath.Join(small, "big.img")); err == nil {
		t.Error("a refused upload left big.img")
	}
}

// The fetch dialog: a gzip image fetched from a URL, its job shown with
// live progress, the image stored decompressed and listed.
func TestConsoleFetchFromURL(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "msdav.toml")
	os.WriteFile(cfgFile, []byte("[fetch]\nallow_private = true\n"), 0o644)
	cfg, err := conf.Load(cfgFile) // the test's source is on loopback
	if err != nil {
		t.Skipf("this build has no [fetch] (the fetch API is not merged): %v", err)
	}
	ctx := browser(t)
	cfg.Storage.Root = t.TempDir()
	cfg.Gadget.Mode = conf.ModeDisabled
	data := make([]byte, 4<<20)
	rand.Read(data)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Slow enough for the page to show the job running.
		b := gz.Bytes()
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		for i := 0; i < len(b); i += len(b)/10 + 1 {
			w.Write(b[i:min(i+len(b)/10+1, len(b))])
			w.(http.Flusher).Flush()
			time.Sleep(150 * time.Millisecond)
		}
	}))
	defer src.Close()
	base, _ := startServe(t, cfg)
	do(t, ctx, "open the console", chromedp.Navigate(base+"/"))
	waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1'`, 10*time.Second)
	do(t, ctx, "fetch from the URL",
		chromedp.Click(chromedp.ID("fetch")),
		chromedp.WaitVisible(chromedp.ID("fetch-dlg")),
		typeKeys(chromedp.CSS(`#fetch-dlg input[name=url]`), src.URL+"/img/tool.img.gz"),
		chromedp.Click(chromedp.CSS(`#fetch-dlg button.primary`)))
	if e := eval[string](t, ctx, `document.querySelector('#fetch-dlg .error').textContent`); e != "" {
		t.Fatalf("fetch dialog: %s", e)
	}
	waitFor(t, ctx, "the job shown running with progress", `(() => { const p = document.querySelector('li[data-job] progress'); return p && p.value > 0 && document.querySelector('li[data-job]').classList.contains('running'); })()`, 5*time.Second)
	waitFor(t, ctx, "the job done", `document.querySelector('li[data-job]').classList.contains('done')`, 15*time.Second)
	waitFor(t, ctx, "the image listed", `!!document.querySelector('li.file[data-path="tool.img"]')`, 5*time.Second)
	if got, err := os.ReadFile(filepath.Join(cfg.Storage.Root, "tool.img")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched image differs (%d bytes, %v)", len(got), err)
	}

	// A second fetch, canceled from its row while running: nothing stays.
	do(t, ctx, "dismiss the finished job", chromedp.Evaluate[chromedp.Void](`document.querySelector('li[data-job] button').click()`))
	waitFor(t, ctx, "the finished job gone", `!document.querySelector('li[data-job]')`, 3*time.Second)
	do(t, ctx, "fetch again",
		chromedp.Click(chromedp.ID("fetch")),
		chromedp.WaitVisible(chromedp.ID("fetch-dlg")),
		chromedp.SetValue(chromedp.CSS(`#fetch-dlg input[name=url]`), src.URL+"/img/other.img.gz"),
		chromedp.Click(chromedp.CSS(`#fetch-dlg button.primary`)),
		chromedp.WaitNotVisible(chromedp.ID("fetch-dlg")))
	waitFor(t, ctx, "the second job running", `document.querySelector('li[data-job]')?.classList.contains('running') && document.querySelector('li[data-job] button').textContent === 'Cancel'`, 5*time.Second)
	do(t, ctx, "cancel it", chromedp.Click(chromedp.CSS(`li[data-job] button`)))
	waitFor(t, ctx, "the job canceled", `document.querySelector('li[data-job]').classList.contains('canceled')`, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	ents, _ := os.ReadDir(cfg.Storage.Root)
	for _, e := range ents {
		if e.Name() != "tool.img" && !strings.HasPrefix(e.Name(), ".msdav-sum") {
			t.Errorf("a canceled fetch left %s", e.Name())
		}
	}
}

// The fetch dialog against the SPEC's shapes, answered in the browser
// (DevTools interception) so it is proven before the fetch API is merged:
// the POST body, the 202 job, progress by GET /api/jobs/{id}, the end state.
func TestConsoleFetchDialogShapes(t *testing.T) {
	ctx := browser(t)
	cfg := testConfig(t)
	os.Mkdir(filepath.Join(cfg.Storage.Root, "isos"), 0o755)
	base, _ := startServe(t, cfg)
	do(t, ctx, "open the console", chromedp.Navigate(base+"/#isos"))
	waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1'`, 10*time.Second)
	ictx, stop := context.WithCancel(ctx)
	defer stop()
	paused := chromedp.Events(ictx, fetch.RequestPaused)
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/api/images/fetch"}, {URLPattern: "*/api/jobs/*"}}}); err != nil {
		t.Fatal(err)
	}
	posted := make(chan string, 1)
	go func() {
		polls := 0
		for ev, err := range paused {
			if err != nil {
				return
			}
			status, body := 200, ""
			switch {
			case ev.Request.Method == "POST":
				var b []byte
				for _, e := range ev.Request.PostDataEntries {
					b = append(b, e.Bytes...)
				}
				posted <- string(b)
				status, body = 202, `{"id":"7","kind":"fetch","url":"https://example.org/tool.img.xz","path":"isos/tool.img","state":"running","received":0,"expected":null,"written":0}`
			case ev.Request.Method == "GET" && polls < 2:
				polls++
				body = fmt.Sprintf(`{"id":"7","kind":"fetch","url":"https://example.org/tool.img.xz","path":"isos/tool.img","state":"running","received":%d,"expected":3000000,"written":%d}`, polls*1000000, polls*2500000)
			default:
				body = `{"id":"7","kind":"fetch","url":"https://example.org/tool.img.xz","path":"isos/tool.img","state":"failed","received":3000000,"expected":3000000,"written":7000000,"error":"sha256 mismatch: got 1234, want 5678"}`
			}
			chromedp.Call(ictx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID: ev.RequestID, ResponseCode: int64(status),
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "application/json"}},
				Body:            []byte(body),
			})
		}
	}()
	do(t, ctx, "fetch from a URL",
		chromedp.Click(chromedp.ID("fetch")),
		chromedp.WaitVisible(chromedp.ID("fetch-dlg")),
		typeKeys(chromedp.CSS(`#fetch-dlg input[name=url]`), "https://example.org/tool.img.xz"),
		typeKeys(chromedp.CSS(`#fetch-dlg input[name=sha256]`), strings.Repeat("ab", 32)),
		chromedp.Click(chromedp.CSS(`#fetch-dlg button.primary`)),
		chromedp.WaitNotVisible(chromedp.ID("fetch-dlg")))
	select {
	case body := <-posted:
		for _, want := range []string{`"url":"https://example.org/tool.img.xz"`, `"path":"isos/tool.img"`, `"decompress":"auto"`, `"sha256":"` + strings.Repeat("ab", 32) + `"`} {
			if !strings.Contains(body, want) {
				t.Errorf("POST body %s lacks %s", body, want)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the dialog sent no POST /api/images/fetch")
	}
	waitFor(t, ctx, "progress shown", `(document.querySelector('li[data-job="7"] .status')?.textContent || '').includes('of 2.9 MiB')`, 5*time.Second)
	waitFor(t, ctx, "the failure shown in words", `(document.querySelector('li[data-job="7"] .status')?.textContent || '').includes('sha256 mismatch')`, 5*time.Second)
}

// A 1 GiB upload through the page against curl's PUT of the same file, on
// loopback (MSDAV_CONSOLE_BENCH=1; run without -race for real figures).
func TestConsoleUploadSpeed(t *testing.T) {
	if os.Getenv("MSDAV_CONSOLE_BENCH") == "" {
		t.Skip("set MSDAV_CONSOLE_BENCH=1 to time a 1 GiB upload through Chromium against curl")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("needs curl")
	}
	ctx := browser(t)
	cfg := testConfig(t)
	base, _ := startServe(t, cfg)
	src := filepath.Join(t.TempDir(), "big.img")
	f, _ := os.Create(src)
	chunk := make([]byte, 1<<20)
	for i := 0; i < 1024; i++ {
		rand.Read(chunk[:4096]) // not all zeroes, cheap to make
		f.Write(chunk)
	}
	f.Close()
	do(t, ctx, "open the console", chromedp.Navigate(base+"/"))
	waitFor(t, ctx, "the page ready", `document.body.dataset.ready === '1'`, 10*time.Second)
	var page, cli []time.Duration
	for round := 0; round < 3; round++ {
		req, _ := http.NewRequest("DELETE", base+"/dav/big.img", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		waitFor(t, ctx, "big.img gone from the page", `!document.querySelector('li.file[data-path="big.img"]')`, 5*time.Second)
		do(t, ctx, "clear finished uploads", chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('#uploads li').forEach(li => li.remove())`))
		start := time.Now()
		do(t, ctx, "pick the file", chromedp.SetUploadFiles(chromedp.CSS("#pick"), []string{src}))
		waitFor(t, ctx, "the upload ended", `['done', 'failed', 'canceled'].some(c => document.querySelector('li[data-upload="big.img"]')?.classList.contains(c))`, 2*time.Minute)
		page = append(page, time.Since(start))
		if st := eval[string](t, ctx, `document.querySelector('li[data-upload="big.img"]').className + ': ' + document.querySelector('li[data-upload="big.img"] .status').textContent`); !strings.Contains(st, "done") {
			t.Fatalf("upload through the page: %s", st)
		}
		start = time.Now()
		if out, err := exec.Command(curl, "-sf", "-T", src, base+"/dav/big-curl.img").CombinedOutput(); err != nil {
			t.Fatalf("curl: %v %s", err, out)
		}
		cli = append(cli, time.Since(start))
		os.Remove(filepath.Join(cfg.Storage.Root, "big-curl.img"))
	}
	med := func(v []time.Duration) time.Duration { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	t.Logf("1 GiB upload, median of 3: page %s, curl %s, page/curl %.2f (page %v, curl %v)", med(page).Round(time.Millisecond), med(cli).Round(time.Millisecond), float64(med(page))/float64(med(cli)), page, cli)
}

// A part that stopped answering shows as unavailable with the reason, and
// the rest of the page (drives, the other images) keeps working.
func TestConsoleDeadPart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts FUSE as a part of the store")
	}
	ctx := browser(t)
	cfg := testConfig(t)
	cfg.Storage.PartTimeout.Duration = 300 * time.Millisecond
	cfg.Server.ShutdownGrace.Duration = time.Second // the page's listing of the stuck part never ends
	cfg.Gadget = gadgettest.Bound(t, 1)
	cfg.Gadget.Mode = conf.ModeConfigfs
	os.WriteFile(filepath.Join(cfg.Storage.Root, "boot.iso"), make([]byte, 4096), 0o644)
	nfs := filepath.Join(cfg.Storage.Root, "nfs")
	os.Mkdir(nfs, 0o755)
	fusetest.Dead(t, "stucknfs", nfs)
	base, _ := startServe(t, cfg)
	do(t, ctx, "open the console", chromedp.Navigate(base+"/"))
	waitFor(t, ctx, "the stuck part shown unavailable, with msdav's reason", `(document.querySelector('li.part[data-part="nfs"]')?.textContent || '').includes('unavailable: did not answer')`, 10*time.Second)
	t.Logf("the stuck part as shown: %q", eval[string](t, ctx, `document.querySelector('li.part[data-part="nfs"]').textContent`))
	waitFor(t, ctx, "the other image listed", `!!document.querySelector('li.file[data-path="boot.iso"]')`, 5*time.Second)
	do(t, ctx, "attach boot.iso",
		chromedp.Click(chromedp.CSS(`button[data-k="at:boot.iso"]`)),
		chromedp.WaitVisible(chromedp.ID("attach-dlg")),
		chromedp.Click(chromedp.CSS(`#attach-dlg button.primary`)),
		chromedp.WaitNotVisible(chromedp.ID("attach-dlg")))
	if f := lunAttr(cfg.Gadget, 0, "file"); f != filepath.Join(cfg.Storage.Root, "boot.iso") {
		t.Errorf("attach with a stuck part: file %q", f)
	}
}

// The page shows what a drive's state says is wrong: a URL drive (userspace
// backend) as streamed from its server, not as a file outside the store,
// with its server's failure; a drive left empty by a restart with why. The
// API's answer is a fixture (testdata/drives-trouble.json): the states come
// from userspace drives, which need FunctionFS, not here.
func TestConsoleDriveTrouble(t *testing.T) {
	ctx := browser(t)
	drives, err := os.ReadFile("testdata/drives-trouble.json")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", web.New())
	answer := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}
	mux.HandleFunc("/api/drives", answer(drives))
	mux.HandleFunc("/api/images", answer([]byte(`{"images":[],"parts":[]}`)))
	mux.HandleFunc("/api/jobs", answer([]byte(`{"jobs":[]}`)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	do(t, ctx, "open the console", chromedp.Navigate(srv.URL+"/"))
	waitFor(t, ctx, "three drives", `document.querySelectorAll('li[data-drive]').length === 3`, 10*time.Second)
	if out := os.Getenv("MSDAV_SHOT"); out != "" {
		if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(out, png, 0o644)
		}
	}
	// A long URL wraps inside its card instead of running out of it.
	if !eval[bool](t, ctx, `[...document.querySelectorAll('li[data-drive]')].every(li => li.scrollWidth <= li.clientWidth)`) {
		t.Error("a drive's text runs out of its card")
	}
	text := func(i int) string {
		return eval[string](t, ctx, fmt.Sprintf(`document.querySelector('li[data-drive="%d"]').innerText`, i))
	}
	for _, tc := range []struct {
		drive     int
		want, not []string
	}{
		{0, []string{"https://mirror.example/win11.iso", "streamed from its server", "does not answer", "no answer in 10s"}, []string{"outside the store", "writable"}},
		{1, []string{"No image", "Not put back after msdav restarted: isos/tools.img: the file is gone"}, nil},
		{2, []string{"isos/debian-13.iso", "read-only"}, []string{"does not answer", "Not put back"}},
	} {
		got := text(tc.drive)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("drive %d shows %q, without %q", tc.drive, got, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(got, w) {
				t.Errorf("drive %d shows %q, with %q", tc.drive, got, w)
			}
		}
	}
}
