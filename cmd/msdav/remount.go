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

// remountCmd is the manual escape hatch of kvmd-helper-otgmsd-remount: it
// flips the filesystem holding storage.root, whatever msdav's guard thinks.
// A running server puts it back to ro after its next write, or at restart.
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
}
