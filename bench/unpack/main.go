// Command unpack times msdav's decompression of a file into another on the
// same disk, for comparison with xz -dc, zstd -dc, gzip -dc and bzip2 -dc.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/msdav/msdav/fetch/unpack"
)

func main() {
	out := flag.String("o", "", "output `file` (default: next to the input, removed after)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: unpack [-o out] compressed-file")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out); err != nil {
		fmt.Fprintln(os.Stderr, "unpack:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	if out == "" {
		out = in + ".out"
		defer os.Remove(out)
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	defer w.Close()
	began := time.Now()
	br, format, err := unpack.Peek(f)
	if err != nil {
		return err
	}
	r, err := unpack.Reader(br, format)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.CopyBuffer(w, r, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	d := time.Since(began)
	fmt.Printf("%s\t%s\t%d bytes\t%.2f s\t%.0f MB/s\n", in, format, n, d.Seconds(), float64(n)/d.Seconds()/1e6)
	return nil
}
