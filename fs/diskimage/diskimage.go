// Package diskimage writes blank flash images: an MBR with one FAT32
// partition, or plain zeroes, so nobody needs fdisk, losetup and mkfs.vfat.
package diskimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
)

// Options say what goes into the image.
type Options struct {
	FS    string // "fat32" (default) or "none"
	Label string // FAT volume label, at most 11 characters; default "MSDAV"
}

const (
	sector      = 512
	partStart   = 2048 // LBA of the partition: 1 MiB, aligned for flash
	reserved    = 32   // FAT32 reserved sectors
	numFATs     = 2
	minClusters = 65525 // fewer clusters is FAT16 by definition
)

// MinFAT32 is the smallest image that holds a FAT32 partition (1 MiB of
// MBR gap, then 65525 clusters of one sector plus FATs and reserved sectors).
const MinFAT32 = (partStart + reserved + 2*((minClusters+2)*4+sector-1)/sector + minClusters + 1) * sector

// Format makes f (empty or not) into a blank image of size bytes. Untouched
// regions are left sparse: they read as zeroes.
func Format(f *os.File, size int64, o Options) error {
	if size <= 0 {
		return fmt.Errorf("image size %d: must be positive", size)
	}
	if size%sector != 0 {
		return fmt.Errorf("image size %d: must be a multiple of %d bytes", size, sector)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("format: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("format: size %d: %w", size, err)
	}
	switch o.FS {
	case "none":
		return nil
	case "", "fat32":
	default:
		return fmt.Errorf("filesystem %q: want fat32 or none", o.FS)
	}
	label, err := CheckLabel(o.Label)
	if err != nil {
		return err
	}
	if size < MinFAT32 {
		return fmt.Errorf("FAT32 needs at least %d bytes (%d MiB); %d is too small: use -fs none or a larger size", MinFAT32, (MinFAT32+(1<<20)-1)>>20, size)
	}
	total := uint32(size/sector) - partStart
	if size/sector-partStart > 0xFFFFFFFF {
		return fmt.Errorf("image size %d: an MBR partition ends at 2 TiB", size)
	}
	spc := clusterSectors(total)
	// Microsoft's FAT specification, "FAT Data Structure": the FAT size.
	tmp1 := total - reserved
	tmp2 := (256*spc + numFATs) / 2
	fatSz := (tmp1 + tmp2 - 1) / tmp2
	clusters := (total - reserved - numFATs*fatSz) / spc
	if clusters < minClusters {
		return fmt.Errorf("%d bytes give %d clusters, FAT32 needs %d: make the image larger", size, clusters, minClusters)
	}
	volID := uint32(time.Now().UnixNano()) ^ rand.Uint32()

	w := func(lba int64, b []byte) error {
		if _, err := f.WriteAt(b, lba*sector); err != nil {
			return fmt.Errorf("format: write sector %d: %w", lba, err)
		}
		return nil
	}
	if err := w(0, mbr(total, volID)); err != nil {
		return err
	}
	boot := bootSector(total, spc, fatSz, volID, label)
	info := fsInfo(clusters - 1)
	for _, base := range []int64{partStart, partStart + 6} { // the boot sectors and their backup
		if err := w(base, boot); err != nil {
			return err
		}
		if err := w(base+1, info); err != nil {
			return err
		}
		if err := w(base+2, bootTail()); err != nil {
			return err
		}
	}
	fat := make([]byte, sector)
	binary.LittleEndian.PutUint32(fat[0:], 0x0FFFFFF8)
	binary.LittleEndian.PutUint32(fat[4:], 0x0FFFFFFF)
	binary.LittleEndian.PutUint32(fat[8:], 0x0FFFFFFF) // the root folder, one cluster
	for i := uint32(0); i < numFATs; i++ {
		if err := w(int64(partStart+reserved+i*fatSz), fat); err != nil {
			return err
		}
	}
	root := make([]byte, sector)
	copy(root, label)
	root[11] = 0x08 // volume label entry
	dataStart := int64(partStart + reserved + numFATs*fatSz)
	if err := w(dataStart, root); err != nil {
		return err
	}
	return nil
}

// clusterSectors follows the Microsoft table for FAT32 cluster sizes.
func clusterSectors(total uint32) uint32 {
	switch {
	case total <= 532480: // 260 MB
		return 1
	case total <= 16777216: // 8 GB
		return 8
	case total <= 33554432: // 16 GB
		return 16
	case total <= 67108864: // 32 GB
		return 32
	default:
		return 64
	}
}

func mbr(total, sig uint32) []byte {
	b := make([]byte, sector)
	binary.LittleEndian.PutUint32(b[440:], sig)
	p := b[446:462]
	p[0] = 0x00                            // not active
	copy(p[1:4], []byte{0xFE, 0xFF, 0xFF}) // CHS: use LBA
	p[4] = 0x0C                            // FAT32 with LBA
	copy(p[5:8], []byte{0xFE, 0xFF, 0xFF})
	binary.LittleEndian.PutUint32(p[8:], partStart)
	binary.LittleEndian.PutUint32(p[12:], total)
	b[510], b[511] = 0x55, 0xAA
	return b
}

func bootSector(total, spc, fatSz, volID uint32, label []byte) []byte {
	b := make([]byte, sector)
	copy(b[0:], []byte{0xEB, 0x58, 0x90})
	copy(b[3:11], "MSDAV   ")
	binary.LittleEndian.PutUint16(b[11:], sector)
	b[13] = byte(spc)
	binary.LittleEndian.PutUint16(b[14:], reserved)
	b[16] = numFATs
	b[21] = 0xF8
	binary.LittleEndian.PutUint16(b[24:], 63)
	binary.LittleEndian.PutUint16(b[26:], 255)
	binary.LittleEndian.PutUint32(b[28:], partStart)
	binary.LittleEndian.PutUint32(b[32:], total)
	binary.LittleEndian.PutUint32(b[36:], fatSz)
	binary.LittleEndian.PutUint32(b[44:], 2) // root folder cluster
	binary.LittleEndian.PutUint16(b[48:], 1) // FSInfo sector
	binary.LittleEndian.PutUint16(b[50:], 6) // backup boot sector
	b[64] = 0x80
	b[66] = 0x29
	binary.LittleEndian.PutUint32(b[67:], volID)
	copy(b[71:82], label)
	copy(b[82:90], "FAT32   ")
	// Not bootable: ask the BIOS for the next boot device (int 18h).
	copy(b[90:], []byte{0xCD, 0x18, 0xEB, 0xFE})
	b[510], b[511] = 0x55, 0xAA
	return b
}

func fsInfo(free uint32) []byte {
	b := make([]byte, sector)
	binary.LittleEndian.PutUint32(b[0:], 0x41615252)
	binary.LittleEndian.PutUint32(b[484:], 0x61417272)
	binary.LittleEndian.PutUint32(b[488:], free)
	binary.LittleEndian.PutUint32(b[492:], 3)
	binary.LittleEndian.PutUint32(b[508:], 0xAA550000)
	return b
}

// bootTail is the third boot sector FAT32 reserves; only its signature is set.
func bootTail() []byte {
	b := make([]byte, sector)
	b[510], b[511] = 0x55, 0xAA
	return b
}

// CheckLabel turns a volume label into its 11 padded bytes.
func CheckLabel(l string) ([]byte, error) {
	if l == "" {
		l = "MSDAV"
	}
	l = strings.ToUpper(l)
	if len(l) > 11 {
		return nil, fmt.Errorf("label %q: at most 11 characters", l)
	}
	for _, c := range l {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(" !#$%&'()-@^_`{}~", c)) {
			return nil, fmt.Errorf("label %q: %q is not allowed (letters, digits, space and !#$%%&'()-@^_`{}~)", l, c)
		}
	}
	return []byte(fmt.Sprintf("%-11s", l)), nil
}

// ParseSize reads "512M", "1G", "1GiB" (binary), "1000MB" (decimal) or a
// plain number of bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit, like 512M or 4G", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	units := map[string]int64{
		"": 1, "B": 1,
		"K": 1 << 10, "KIB": 1 << 10, "KB": 1e3,
		"M": 1 << 20, "MIB": 1 << 20, "MB": 1e6,
		"G": 1 << 30, "GIB": 1 << 30, "GB": 1e9,
		"T": 1 << 40, "TIB": 1 << 40, "TB": 1e12,
	}
	mul, ok := units[strings.ToUpper(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (K, M, G, T, KiB.., KB..)", s, t[i:])
	}
	if n > (1<<62)/mul {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	if n*mul <= 0 {
		return 0, errors.New("size must be positive")
	}
	return n * mul, nil
}
