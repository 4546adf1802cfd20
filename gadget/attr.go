package gadget

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// attrIO reads and writes configfs attributes; tests swap it to inject the
// kernel's answers.
type attrIO interface {
	read(path string) (string, error)
	write(path, value string) error
}

// newAttr makes the attribute writer a Gadget uses; tests swap it.
var newAttr = func() attrIO { return osAttr{} }

// osAttr talks to the real configfs. Every value goes in one write(2): the
// kernel parses each write as a whole value, and a zero-byte write fails
// with EFAULT, so an empty value is written as "\n".
type osAttr struct{}

func (osAttr) read(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

func (osAttr) write(path, value string) error {
	if value == "" {
		value = "\n"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write([]byte(value))
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	return kernelMeaning(path, werr)
}

// kernelMeaning maps the kernel's errno on a LUN attribute to what it means.
func kernelMeaning(path string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EBUSY) && strings.HasSuffix(path, "/file") {
		return fmt.Errorf("write %s: %w", path, ErrMediumLocked)
	}
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("write %s: the drive is in use (eject first): %w", path, err)
	}
	return fmt.Errorf("write %s: %w", path, err)
}
