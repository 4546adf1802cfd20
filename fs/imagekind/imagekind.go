// Package imagekind tells what a disk image is from its first sectors:
// an ISO 9660 or UDF disc, a hybrid of a disc and a partitioned disk, a disk, or FAT.
package imagekind

import (
	"bytes"
	"encoding/binary"
	"io"
)

// Kind is what an image holds, as the catalog names it.
type Kind string

// The kinds. Hybrid is a disc image that also carries an MBR or GPT, so it
// boots as a flash drive too; Disk has a partition table and no disc.
const (
	ISO9660 Kind = "iso9660"
	UDF     Kind = "udf"
	Hybrid  Kind = "hybrid"
	Disk    Kind = "disk"
	FAT     Kind = "fat"
	Unknown Kind = "unknown"
)

// HeadSize is how much of an image Detect reads: the MBR, a GPT header for
// 512- and 4096-byte sectors, and the disc's volume recognition area
// (sectors 16 to 31 of 2048 bytes).
const HeadSize = 64 << 10

// Detect reads the start of an image of the given size. A read error or a
// short image gives Unknown: the kind is advice, never a reason to fail.
func Detect(r io.ReaderAt, size int64) Kind {
	n := min(size, HeadSize)
	if n < 512 {
		return Unknown
	}
	b := make([]byte, n)
	if m, err := r.ReadAt(b, 0); m < len(b) && err != nil {
		b = b[:m]
	}
	return detect(b)
}

func detect(b []byte) Kind {
	disc := discKind(b)
	table := partitioned(b)
	switch {
	case disc != "" && table:
		return Hybrid
	case disc != "":
		return disc
	case isFAT(b):
		// Before the table: a FAT boot record also ends in 55 AA, and
		// its bytes at 446 are boot code that can pass for entries.
		return FAT
	case table:
		return Disk
	}
	return Unknown
}

// discKind looks at the volume descriptors from sector 16 (2048-byte
// sectors, ECMA-119 and ECMA-167). An image with a UDF file system is UDF
// even with an ISO 9660 bridge (Windows install media): UDF is what holds
// the files, and what a host needs to read to see them all.
func discKind(b []byte) Kind {
	iso, udf := false, false
	for sec := 16; (sec+1)*2048 <= len(b); sec++ {
		d := b[sec*2048 : sec*2048+7]
		id := string(d[1:6])
		switch id {
		case "CD001":
			iso = true
		case "NSR02", "NSR03":
			udf = true
		}
		// The sequence ends at the first sector that is no descriptor;
		// a UDF one follows the ISO set terminator directly.
		if id != "CD001" && id != "BEA01" && id != "NSR02" && id != "NSR03" && id != "TEA01" && id != "BOOT2" && id != "CDW02" {
			break
		}
	}
	switch {
	case udf:
		return UDF
	case iso:
		return ISO9660
	}
	return ""
}

// partitioned reports an MBR with at least one sane partition entry, or a
// GPT header (behind its protective MBR) for 512- or 4096-byte sectors.
func partitioned(b []byte) bool {
	for _, off := range []int{512, 4096} {
		if off+8 <= len(b) && string(b[off:off+8]) == "EFI PART" {
			return true
		}
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return false
	}
	any := false
	for i := range 4 {
		e := b[446+16*i : 446+16*(i+1)]
		status, typ := e[0], e[4]
		count := binary.LittleEndian.Uint32(e[12:])
		if status != 0 && status != 0x80 {
			return false
		}
		if typ == 0 {
			continue
		}
		if count == 0 {
			return false
		}
		any = true
	}
	return any
}

// isFAT recognises a FAT12/16/32 boot sector without a partition table (a
// "superfloppy"): a jump, a sane BPB and the file system name.
func isFAT(b []byte) bool {
	if b[510] != 0x55 || b[511] != 0xAA {
		return false
	}
	if b[0] != 0xEB && b[0] != 0xE9 {
		return false
	}
	bps := binary.LittleEndian.Uint16(b[11:])
	if bps != 512 && bps != 1024 && bps != 2048 && bps != 4096 {
		return false
	}
	spc := b[13]
	if spc == 0 || spc&(spc-1) != 0 {
		return false
	}
	return bytes.HasPrefix(b[54:], []byte("FAT1")) || bytes.HasPrefix(b[82:], []byte("FAT32"))
}
