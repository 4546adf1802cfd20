package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/drives"
	"github.com/msdav/msdav/gadget"
)

func init() {
	register(command{"drive", "show or change a drive, like kvmd-otgmsd (through msdav serve when it runs)", driveCmd})
}

// driveCmd has kvmd-otgmsd's options and output. While msdav serve runs it
// acts through the server; otherwise on configfs itself, under the store's lock.
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
	var abs string
	if *image != "" {
		if abs, err = filepath.Abs(*image); err != nil {
			return err
		}
	}
	var d drives.State
	err = viaServerOr(cfg, func(c *localClient) error {
		path := fmt.Sprintf("/api/drives/%d", *idx)
		if *eject || *unlock {
			q := ""
			if *unlock {
				q = "?force=1"
			}
			if _, err := c.call("DELETE", path+q, nil, nil); err != nil {
				return err
			}
		}
		if abs != "" {
			body := map[string]any{"file": abs, "cdrom": cd, "rw": w}
			if _, err := c.call("PUT", path, body, nil); err != nil {
				return err
			}
		}
		_, err := c.call("GET", path, nil, &d)
		return err
	}, func() error {
		return driveDirect(cfg, func(dm *drives.Manager) error {
			ctx := context.Background()
			if *eject || *unlock {
				if _, err := dm.Eject(ctx, *idx, *unlock); err != nil {
					return err
				}
			}
			if abs != "" {
				if _, err := dm.Attach(ctx, drives.Request{Drive: *idx, File: abs, CDROM: cd, RW: w}); err != nil {
					return err
				}
			}
			var err error
			d, err = dm.Drive(*idx)
			return err
		})
	})
	if err != nil {
		return err
	}
	file := d.File
	if d.Image != nil {
		root, _ := filepath.Abs(cfg.Storage.Root)
		file = filepath.Join(root, filepath.FromSlash(*d.Image))
	}
	fmt.Fprintf(stdout, "Image file:  %s\nCD/DVD flag: %s\nRW flag:     %s\n", file, yesNo(d.CDROM), yesNo(d.RW))
	return nil
}

// driveDirect runs fn with a drive manager of its own, for when no server
// runs: the same rules (rw hold, flush at eject, 423) as the server's.
func driveDirect(cfg conf.Config, fn func(*drives.Manager) error) error {
	if cfg.Gadget.Mode == conf.ModeAuto {
		cfg.Gadget.Mode = conf.ModeConfigfs
	}
	if cfg.Gadget.Backend == conf.BackendUserspace {
		// Those drives are msdav serve's own process: none exist without it.
		return errors.New("gadget.backend = \"userspace\": the drives exist only while msdav serve runs; start it (systemctl start msdav) and run this again")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gadget.Open(cfg.Gadget, quiet)
	if err != nil {
		return err
	}
	store, err := openStore(cfg, quiet)
	if err != nil {
		return err
	}
	err = fn(drives.New(store, g, nil, nil, quiet))
	return errors.Join(err, closeStore(store))
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
