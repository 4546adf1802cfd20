package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/gadget"
)

func init() {
	register(command{"drive", "show or change a drive straight on configfs, like kvmd-otgmsd", driveCmd})
}

// driveCmd acts on configfs directly, without a running server, with
// kvmd-otgmsd's options and output.
func driveCmd(args []string, stdout, stderr io.Writer) error {
	f := newFlags("drive", stderr)
	cfgPath := f.String("config", "", "TOML config `file`")
	idx := f.Int("i", 0, "drive `index` (0 is the main drive)")
	image := f.String("set-image", "", "attach the image at `PATH`")
	cdrom := f.String("set-cdrom", "", "0|1: attach as CD/DVD")
	rw := f.String("set-rw", "", "0|1: attach writable")
	unlock := f.Bool("unlock", false, "break the host's lock on the medium (forced eject)")
	eject := f.Bool("eject", false, "eject the medium")
	if err := parse(f, args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.Arg(0))
	}
	cd, err := flagBool(f, "set-cdrom", *cdrom)
	if err != nil {
		return err
	}
	w, err := flagBool(f, "set-rw", *rw)
	if err != nil {
		return err
	}
	cfg, err := conf.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Gadget.Mode == conf.ModeAuto {
		cfg.Gadget.Mode = conf.ModeConfigfs
	}
	g, err := gadget.Open(cfg.Gadget, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	if *eject || *unlock {
		if _, err := g.Eject(*idx, *unlock); err != nil {
			return err
		}
	}
	if *image != "" {
		abs, err := filepath.Abs(*image)
		if err != nil {
			return err
		}
		if _, err := g.Attach(*idx, abs, cd, w); err != nil {
			return err
		}
	}
	d, err := g.Drive(*idx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Image file:  %s\nCD/DVD flag: %s\nRW flag:     %s\n", d.File, yesNo(d.CDROM), yesNo(d.RW))
	return nil
}

func flagBool(f *flag.FlagSet, name, v string) (bool, error) {
	switch v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, errors.New("-" + name + " takes 0 or 1")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
