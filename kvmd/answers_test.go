package kvmd

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/answers.golden")

// Every kvmd call's answer, byte for byte (status, the headers kvmd's
// clients read, body), against what msdav answered before its handlers
// were made to write in one place: a change of style changes no answer.
func TestKVMDAnswersGolden(t *testing.T) {
	srv, _, store, _ := server(t)
	pat := bytes.Repeat([]byte("msdav kvmd golden "), 256)
	os.WriteFile(filepath.Join(store.Dir(), "a.img"), pat, 0o644)
	os.MkdirAll(filepath.Join(store.Dir(), "dir"), 0o755)
	var out bytes.Buffer
	numbers := regexp.MustCompile(`"(mod_ts|free|size)": [0-9.e+]+`) // the machine's: times, free space
	cookie := regexp.MustCompile(`auth_token=[0-9a-f]+`)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/msd/read?image=../x", ""},
		{"GET", "/api/msd/read?image=a.img&compress=bogus", ""},
		{"GET", "/api/msd/read?image=none.img", ""},
		{"GET", "/api/msd/read?image=a.img", ""},
		{"GET", "/api/msd/read?image=a.img&compress=zstd", ""},
		{"POST", "/api/msd/set_params?cdrom=maybe", ""},
		{"POST", "/api/msd/set_params?rw=2", ""},
		{"POST", "/api/msd/set_params?image=../etc", ""},
		{"POST", "/api/msd/set_params?image=none.img", ""},
		{"POST", "/api/msd/set_params?image=dir", ""},
		{"POST", "/api/msd/set_params?image=a.img&cdrom=0&rw=1", ""},
		{"GET", "/api/msd", ""},
		{"POST", "/api/msd/set_connected", ""},
		{"POST", "/api/msd/set_connected?connected=0", ""},
		{"POST", "/api/msd/set_connected?connected=1", ""},
		{"POST", "/api/msd/set_connected?connected=1", ""},
		{"POST", "/api/msd/set_params?image=a.img", ""},
		{"POST", "/api/msd/remove?image=a.img", ""},
		{"POST", "/api/msd/write?image=b.img", "hello"},
		{"GET", "/api/msd", ""},
		{"POST", "/api/msd/set_connected?connected=0", ""},
		{"POST", "/api/msd/write?image=b.img", "hello"},
		{"POST", "/api/msd/write?prefix=sub/dir&image=c.img", "hello"},
		{"POST", "/api/msd/write?image=../b.img", "hello"},
		{"POST", "/api/msd/write", "hello"},
		{"POST", "/api/msd/write?image=d.img&remove_incomplete=x", "hello"},
		{"POST", "/api/msd/write_remote?url=ftp://x/a", ""},
		{"POST", "/api/msd/write_remote?url=http://x/a&timeout=-1", ""},
		{"POST", "/api/msd/write_remote?url=http://x/a&insecure=2", ""},
		{"POST", "/api/msd/write_remote?url=http://x/a", ""},
		{"POST", "/api/msd/remove?image=none.img", ""},
		{"POST", "/api/msd/remove?image=../x", ""},
		{"POST", "/api/msd/remove?image=b.img", ""},
		{"POST", "/api/msd/reset", ""},
		{"GET", "/api/msd/nope", ""},
		{"PUT", "/api/msd", ""},
		{"POST", "/api/auth/login", "user=a&passwd=b&expire=x"},
		{"POST", "/api/auth/login", "user=a&passwd=b"},
		{"GET", "/api/auth/check", ""},
		{"POST", "/api/auth/logout", ""},
		{"GET", "/api/msd", ""},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		if strings.HasPrefix(c.path, "/api/auth/login") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := strings.ReplaceAll(string(b), store.Dir(), "STORE")
		norm := numbers.ReplaceAllString(body, `"$1": N`)
		fmt.Fprintf(&out, "%s %s\n%d\n", c.method, c.path, resp.StatusCode)
		for _, k := range []string{"Content-Type", "Content-Length", "Content-Disposition", "Set-Cookie"} {
			if k == "Content-Length" && norm != body {
				continue // varies with the numbers taken out
			}
			if v := resp.Header.Get(k); v != "" {
				fmt.Fprintf(&out, "%s: %s\n", k, cookie.ReplaceAllString(v, "auth_token=T"))
			}
		}
		fmt.Fprintf(&out, "%q\n\n", norm)
	}
	golden := filepath.Join("testdata", "answers.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, out.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, out.Bytes()) {
		got := filepath.Join(t.TempDir(), "answers")
		os.WriteFile(got, out.Bytes(), 0o644)
		t.Errorf("answers changed: diff %s %s", golden, got)
	}
}

// Handlers return what to answer; one function writes it (as api's do).
// Any other call of fail or reply is a handler writing inline again.
func TestKVMDHandlersWriteOnce(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	var inline []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Name.Name == "answer" {
					continue
				}
				ast.Inspect(fd, func(n ast.Node) bool {
					if c, ok := n.(*ast.CallExpr); ok {
						if id, ok := c.Fun.(*ast.Ident); ok && (id.Name == "fail" || id.Name == "reply") {
							inline = append(inline, fmt.Sprintf("%s in %s", fset.Position(c.Pos()), fd.Name.Name))
						}
					}
					return true
				})
			}
		}
	}
	if len(inline) > 0 {
		t.Errorf("%d answers written outside answer:\n%s", len(inline), strings.Join(inline, "\n"))
	}
}
