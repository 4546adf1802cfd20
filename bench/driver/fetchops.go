package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// imageVersion names the synthetic image's recipe in its cache file: a
// change to makeImage must not reuse archives of the old content.
const imageVersion = "v1"

// cachedImage returns the synthetic image of size and its xz -T0 -3 and
// zstd -3 archives, made on first use in dir and kept across runs (xz of
// 1 GiB takes minutes).
func cachedImage(dir string, size int64) (img, xz, zst string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", "", err
	}
	img = filepath.Join(dir, fmt.Sprintf("image-%s-%d.img", imageVersion, size))
	xz, zst = img+".xz", img+".zst"
	if _, err := os.Stat(img); err != nil {
		if err := atomically(img, func(tmp string) error { return makeImage(tmp, size) }); err != nil {
			return "", "", "", err
		}
	}
	for _, c := range []struct {
		out  string
		args []string
	}{{xz, []string{"xz", "-T0", "-3", "-c", img}}, {zst, []string{"zstd", "-3", "-q", "-c", img}}} {
		if _, err := os.Stat(c.out); err == nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: making %s once (cached in %s)\n", filepath.Base(c.out), dir)
		err := atomically(c.out, func(tmp string) error {
			f, err := os.Create(tmp)
			if err != nil {
				return err
			}
			defer f.Close()
			var msg bytes.Buffer
			cmd := exec.Command(c.args[0], c.args[1:]...)
			cmd.Stdout, cmd.Stderr = f, &msg
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %v %s", strings.Join(c.args, " "), err, msg.Bytes())
			}
			return f.Close()
		})
		if err != nil {
			return "", "", "", err
		}
	}
	return img, xz, zst, nil
}

// atomically makes path through a temp file beside it, so an interrupted
// run leaves no half file in the cache.
func atomically(path string, write func(tmp string) error) error {
	tmp := path + ".part"
	if err := write(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("make %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// makeImage writes a deterministic stand-in for an OS image: a quarter
// zeros (free space), a quarter random (packed data), half word salad
// (text and code), in 1 MiB pieces, so xz and zstd work about as hard as
// on a real image, and not on a file of one repeated block.
func makeImage(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	r := mathrand.New(mathrand.NewSource(15))
	words := strings.Fields("the of and a to in is you that it he was for on are as with his they I at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part kernel init module usr lib bin etc boot grub efi vmlinuz initrd squashfs")
	piece := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(piece)) {
		switch r.Intn(4) {
		case 0:
			clear(piece)
		case 1:
			r.Read(piece)
		default:
			p := piece[:0]
			for len(p) < len(piece) {
				p = append(p, words[r.Intn(len(words))]...)
				p = append(p, " \n"[r.Intn(2)])
			}
			piece = p[:len(piece)]
		}
		if _, err := w.Write(piece[:min(int64(len(piece)), size-n)]); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// job is what GET /api/jobs/{id} says of a fetch.
type job struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Written int64  `json:"written"`
	Error   string `json:"error"`
}

// fetchTime has msdav fetch url into path (decompress "auto" or "none")
// through POST /api/images/fetch, polling /api/jobs/{id} until it is done,
// and checks the image landed whole. The previous copy is deleted first.
func fetchTime(s *server, url, path, decompress string, size int64) (time.Duration, error) {
	if err := davDelete(s, path); err != nil {
		return 0, err
	}
	exec.Command("sync").Run()
	body, _ := json.Marshal(map[string]string{"url": url, "path": path, "decompress": decompress})
	start := time.Now()
	resp, err := s.client.Post(s.base+"/api/images/fetch", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("POST /api/images/fetch: %w", err)
	}
	var j job
	err = json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if err := wantStatus(resp, "POST /api/images/fetch of "+url, 202); err != nil {
		return 0, err
	}
	if err != nil || j.ID == "" {
		return 0, fmt.Errorf("POST /api/images/fetch answered no job: %v", err)
	}
	for j.State == "running" {
		time.Sleep(10 * time.Millisecond)
		if j, err = getJob(s, j.ID); err != nil {
			return 0, err
		}
	}
	d := time.Since(start)
	if j.State != "done" {
		return 0, fmt.Errorf("fetch job %s of %s: %s %s", j.ID, url, j.State, j.Error)
	}
	if fi, err := os.Stat(filepath.Join(s.root, path)); err != nil || fi.Size() != size || j.Written != size {
		return 0, fmt.Errorf("fetch job %s of %s done, but %s holds %d bytes (job: %d), want %d (%v)", j.ID, url, path, fi.Size(), j.Written, size, err)
	}
	return d, nil
}

func getJob(s *server, id string) (job, error) {
	var j job
	resp, err := s.client.Get(s.base + "/api/jobs/" + id)
	if err != nil {
		return j, fmt.Errorf("GET /api/jobs/%s: %w", id, err)
	}
	defer resp.Body.Close()
	if err := wantStatus(resp, "GET /api/jobs/"+id, 200); err != nil {
		return j, err
	}
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		return j, fmt.Errorf("GET /api/jobs/%s: %w", id, err)
	}
	return j, nil
}

// davDelete removes path from a server's share; a path not there is fine.
func davDelete(s *server, path string) error {
	req, _ := http.NewRequest("DELETE", s.url+path, nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE %s: %w", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return wantStatus(resp, "DELETE "+path, 200, 204, 404)
}

// toolTime runs a shell pipeline that writes out, then fsyncs out and
// checks its size: the peer of a fetch row. It returns the wall time and
// the CPU time of the pipeline and of the fsync.
func toolTime(pipeline, out string, size int64) (time.Duration, time.Duration, error) {
	os.Remove(out)
	exec.Command("sync").Run()
	start := time.Now()
	cmd := exec.Command("bash", "-o", "pipefail", "-c", pipeline)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %v %s", pipeline, err, msg)
	}
	c, err := syncFile(out, size)
	d := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	// bash's usage includes the pipeline's commands it waited for.
	return d, c + cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
