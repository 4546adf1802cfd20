package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/msdav/msdav/fs/diskimage"
)

func init() {
	register(command{"mkimage", "create a blank flash image (MBR + FAT32) in the store", mkimageCmd})
}

func mkimageCmd(args []string, stdout, stderr io.Writer) error {
	f := newFlags("mkimage", stderr)
	cfgPath := f.String("config", "", "TOML config `file`")
	size := f.String("size", "", "image `size`: 512M, 4G, 1GiB, 1000MB or bytes")
	fsType := f.String("fs", "fat32", "filesystem: fat32 or none (zeroes)")
	label := f.String("label", "MSDAV", "FAT volume `label` (11 characters at most)")
	f.Usage = func() {
		fmt.Fprintln(stderr, "usage: msdav mkimage [-config FILE] -size SIZE [-fs fat32|none] [-label L] PATH")
		f.PrintDefaults()
	}
	// PATH may come before the flags too.
	var path string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		path, args = args[0], args[1:]
	}
	if err := parse(f, args); err != nil {
		return err
	}
	if path == "" && f.NArg() == 1 {
		path = f.Arg(0)
	} else if f.NArg() > 0 {
		f.Usage()
		return errUsage
	}
	if path == "" || *size == "" {
		f.Usage()
		return errUsage
	}
	n, err := diskimage.ParseSize(*size)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, nil)
	if err != nil {
		return err
	}
	err = viaServerOr(cfg, func(c *localClient) error {
		_, err := c.call("POST", "/api/images", map[string]any{"path": path, "size": n, "fs": *fsType, "label": *label}, nil)
		return err
	}, func() error {
		store, err := openStore(cfg, nil)
		if err != nil {
			return err
		}
		err = diskimage.Create(context.Background(), store, path, n, diskimage.Options{FS: *fsType, Label: *label})
		return errors.Join(err, closeStore(store))
	})
	if err != nil {
		return err
	}
	root, _ := filepath.Abs(cfg.Storage.Root)
	fmt.Fprintf(stdout, "created %s (%d bytes, %s) in %s\n", path, n, *fsType, root)
	return nil
}
