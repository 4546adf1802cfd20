package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
)

const browserTarget = 1.25

// browserRows upload an image from the web console's page in headless
// Chromium, with the console's own upload code, against curl's PUT of the
// same file, and weigh the page and its first render. Without Chromium
// they say so and measure nothing.
func (b *bench) browserRows() {
	ctx, cancel, err := startBrowser(filepath.Join(*work, "chromium"))
	if errors.Is(err, errNoChromium) {
		b.alone = append(b.alone, "Browser upload and console page: not measured (no chromium; apt-get install chromium).")
		return
	}
	if err != nil {
		b.errs = append(b.errs, err.Error())
		b.alone = append(b.alone, "Browser upload and console page: failed (Chromium did not start).")
		return
	}
	defer cancel()
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) error {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			return fmt.Errorf("chromium, %s: %w", what, err)
		}
		return nil
	}
	if line, err := b.consolePage(ctx, step); err != nil {
		b.errs = append(b.errs, err.Error())
		b.alone = append(b.alone, "Console page: failed.")
	} else {
		b.alone = append(b.alone, line)
	}

	size := size(1<<30, 64<<20)
	src := filepath.Join(*work, "src-browser.bin")
	makeSource(src, size)
	defer os.Remove(src)
	row, peer := "Upload "+human(size)+" from the console page in Chromium", "curl -T"
	b.tools.compare(row, peer, browserTarget)
	err = pickFile(ctx, src)
	if err != nil {
		b.tools.fail(row, "msdav", err)
		return
	}
	for r := 0; r < *rounds; r++ {
		for _, k := range order(2, r) {
			if k == 0 {
				b.tools.measure(row, b.msdav, func() (time.Duration, time.Duration, error) {
					return pageUpload(ctx, b.msdav, "browser.img", size)
				})
				continue
			}
			// The server's CPU under each client, curl's here.
			c0 := cpuTime(b.msdav)
			if d, _, err := curlPutTime(b.msdav, "curl.img", src, size); err != nil {
				b.tools.fail(row, peer, err)
			} else {
				b.tools.sample(row, peer, d, cpuTime(b.msdav)-c0)
			}
		}
	}
	os.Remove(filepath.Join(b.msdav.root, "browser.img"))
	os.Remove(filepath.Join(b.msdav.root, "curl.img"))
}

var errNoChromium = errors.New("chromium is not installed (apt-get install chromium)")

// startBrowser starts headless Chromium with its profile in dir.
func startBrowser(dir string) (context.Context, context.CancelFunc, error) {
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		return nil, nil, errNoChromium
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe),
		chromedp.UserDataDir(dir), chromedp.DisableGPU)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	cancel := func() { cancelB(); cancelA() }
	// Start the browser on ctx itself: started under a step's timeout, it
	// would end with that step.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("start %s: %w", exe, err)
	}
	return ctx, cancel, nil
}

// pickFile gives the page src in a file input of its own, #bench-pick: the
// row does not depend on how the console lays out its page, only on its
// upload code.
func pickFile(ctx context.Context, src string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](
		`(() => { const i = document.createElement('input'); i.type = 'file'; i.id = 'bench-pick'; document.body.append(i) })()`),
		chromedp.SetUploadFiles(chromedp.CSS("#bench-pick"), []string{src}))
	if err != nil {
		return fmt.Errorf("chromium, give the page %s: %w", src, err)
	}
	return nil
}

// pageUpload uploads the file the page holds with the console's own
// upload function (web/ui/api.js: an XHR PUT into the share, with progress
// reported), and checks it resolved and the file on disk is whole (msdav
// fsyncs before it answers; the fsync here only checks and evicts).
func pageUpload(ctx context.Context, s *server, name string, size int64) (time.Duration, time.Duration, error) {
	if err := davDelete(s, name); err != nil {
		return 0, 0, err
	}
	exec.Command("sync").Run()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`import('/ui/api.js')
		.then(api => api.upload(%q, document.getElementById('bench-pick').files[0], () => {}, new AbortController().signal))
		.then(() => 'ok', e => 'failed: ' + (e.status ?? '') + ' ' + e.message)`, name), chromedp.EvalAwaitPromise))
	d := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("upload %s from the console page: %w", name, err)
	}
	if res != "ok" {
		return 0, 0, fmt.Errorf("upload %s from the console page: %s", name, res)
	}
	if _, err := syncFile(filepath.Join(s.root, name), size); err != nil {
		return 0, 0, err
	}
	return d, 0, nil
}

// consolePage loads the console with an empty cache and reports what it
// weighs (bodies of the page and everything it loaded) and when it first
// painted.
func (b *bench) consolePage(ctx context.Context, step func(string, ...chromedp.Action[chromedp.Void]) error) (string, error) {
	if err := step("open the console", chromedp.Navigate(b.msdav.base+"/")); err != nil {
		return "", err
	}
	type load struct {
		Bytes    int64   `json:"bytes"`
		Requests int     `json:"requests"`
		Paint    float64 `json:"paint"`
		Status   int     `json:"status"`
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Paint entries come a moment after load: wait for them.
	l, err := chromedp.Run(sctx, chromedp.Evaluate[load](`new Promise(ok => {
		const done = () => {
			const nav = performance.getEntriesByType('navigation')[0];
			const res = performance.getEntriesByType('resource');
			const fcp = performance.getEntriesByName('first-contentful-paint')[0];
			if (!fcp && performance.now() < 10000) return setTimeout(done, 50);
			ok({bytes: [nav, ...res].reduce((n, e) => n + (e.encodedBodySize || 0), 0),
				requests: 1 + res.length, paint: fcp ? fcp.startTime : -1, status: nav.responseStatus || 0});
		};
		document.readyState === 'complete' ? done() : addEventListener('load', done);
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		return "", fmt.Errorf("chromium, weigh the console: %w", err)
	}
	if l.Status != 0 && l.Status != 200 {
		return "", fmt.Errorf("the console page answered %d", l.Status)
	}
	paint := "no first-contentful-paint reported"
	if l.Paint >= 0 {
		paint = fmt.Sprintf("first contentful paint at %.0f ms", l.Paint)
	}
	return fmt.Sprintf("Console page (GET /, headless Chromium, empty cache, loopback): %.1f KiB in %d requests, %s.", float64(l.Bytes)/1024, l.Requests, paint), nil
}
