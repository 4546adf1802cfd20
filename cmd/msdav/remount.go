package main

import (
	"fmt"
	"io"

	"github.com/msdav/msdav/conf"
	"github.com/msdav/msdav/fs"
)

func init() {
	register(command{"remount", "remount the store's filesystem rw or ro, for scp/rsync work", remountCmd})
}

// remountCmd is kvmd-helper-otgmsd-remount: rw keeps the store writable for
// scp or rsync until ro. While msdav serve runs it asks the server, whose
// guard then holds the store rw until "ro"; with no server it remounts
// itself, under the store's lock.
func remountCmd(args []string, stdout, stderr io.Writer) error {
	f := newFlags("remount", stderr)
	cfgPath := f.String("config", "", "TOML config `file`")
	f.Usage = func() {
		fmt.Fprintln(stderr, "usage: msdav remount rw|ro [-config FILE]")
		f.PrintDefaults()
	}
	// Accept the mode before or after the flags.
	var mode string
	if len(args) > 0 && (args[0] == "rw" || args[0] == "ro") {
		mode, args = args[0], args[1:]
	}
	if err := parse(f, args); err != nil {
		return err
	}
	if mode == "" && f.NArg() == 1 {
		mode = f.Arg(0)
	} else if f.NArg() > 0 {
		f.Usage()
		return errUsage
	}
	if mode != "rw" && mode != "ro" {
		f.Usage()
		return errUsage
	}
	cfg, err := conf.Load(*cfgPath)
	if err != nil {
		return err
	}
	return viaServerOr(cfg, func(c *localClient) error {
		var out struct{ Mount, Mode, Note string }
		if _, err := c.call("POST", "/api/store/remount", map[string]string{"mode": mode}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now %s\n", out.Mount, out.Mode)
		if out.Note != "" {
			fmt.Fprintf(stdout, "(%s)\n", out.Note)
		}
		return nil
	}, func() error {
		mnt, err := fs.MountPointOf(cfg.Storage.Root)
		if err != nil {
			return err
		}
		if mode == "ro" {
			if err := fs.SyncFS(mnt); err != nil {
				return err
			}
		}
		if err := fs.Remount(mnt, mode == "rw"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is now %s\n", mnt, mode)
		return nil
	})
}
