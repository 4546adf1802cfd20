package scsi

import "encoding/binary"

// The MMC commands a CD/DVD drive answers beyond a disk's: what BIOS, UEFI,
// Linux's sr and Windows Setup ask before they believe there is a disc.

// Profiles (MMC-6 table 89).
const (
	profileNone   = 0x0000
	profileCDROM  = 0x0008
	profileDVDROM = 0x0010
)

func (l *LUN) profile() uint16 {
	switch {
	case l.med == nil:
		return profileNone
	case l.dvd():
		return profileDVDROM
	default:
		return profileCDROM
	}
}

// msf converts an LBA to minutes/seconds/frames, counting the 2 s pre-gap.
func msf(lba int64) [4]byte {
	lba += 150
	return [4]byte{0, byte(lba / (60 * 75)), byte(lba / 75 % 60), byte(lba % 75)}
}

func addr(lba int64, useMSF bool) []byte {
	if useMSF {
		m := msf(lba)
		return m[:]
	}
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(lba))
	return b
}

// doReadTOC answers formats 0 (TOC), 1 (session info) and 2 (full TOC) for
// a single-session disc with one data track. ADR/control 16h (a data track,
// copying allowed) is f_mass_storage's, which hosts have long been shown.
func doReadTOC(l *LUN, cdb []byte, x Xfer) error {
	useMSF := cdb[1]&0x02 != 0
	format := cdb[2] & 0x0f
	if format == 0 {
		format = cdb[9] >> 6 // the older place, still sent by some hosts
	}
	var b []byte
	switch format {
	case 0:
		track := cdb[6]
		if track > 1 && track != 0xaa {
			return check(InvalidField)
		}
		b = []byte{0, 0, 1, 1}
		if track <= 1 {
			b = append(b, 0, 0x16, 1, 0)
			b = append(b, addr(0, useMSF)...)
		}
		b = append(b, 0, 0x16, 0xaa, 0)
		b = append(b, addr(l.blocks(), useMSF)...)
	case 1:
		b = []byte{0, 0, 1, 1, 0, 0x16, 1, 0}
		b = append(b, addr(0, useMSF)...)
	case 2:
		b = []byte{0, 0, 1, 1}
		lo := msf(l.blocks())
		for _, d := range [][]byte{
			{1, 0x16, 0, 0xa0, 0, 0, 0, 0, 1, 0x00, 0},          // first track 1, disc type CD-ROM
			{1, 0x16, 0, 0xa1, 0, 0, 0, 0, 1, 0, 0},             // last track 1
			{1, 0x16, 0, 0xa2, 0, 0, 0, 0, lo[1], lo[2], lo[3]}, // lead-out
			{1, 0x16, 0, 1, 0, 0, 0, 0, 0, 2, 0},                // track 1 at 00:02:00
		} {
			b = append(b, d...)
		}
	default:
		return check(InvalidField)
	}
	binary.BigEndian.PutUint16(b, uint16(len(b)-2))
	return x.Send(b)
}

func doReadHeader(l *LUN, cdb []byte, x Xfer) error {
	lba := be32(cdb[2:])
	if lba >= l.blocks() {
		return check(LBAOutOfRange)
	}
	b := []byte{1, 0, 0, 0} // mode 1 data
	return x.Send(append(b, addr(lba, cdb[1]&0x02 != 0)...))
}

// feature builds one feature descriptor (version 0 unless said, persistent
// and current flags as given).
func feature(code uint16, flags byte, data ...byte) []byte {
	b := []byte{byte(code >> 8), byte(code), flags, byte(len(data))}
	return append(b, data...)
}

func doGetConfiguration(l *LUN, cdb []byte, x Xfer) error {
	rt := cdb[1] & 0x03
	start := uint16(be16(cdb[2:]))
	if rt == 3 {
		return check(InvalidField)
	}
	cur := l.profile()
	current := func(on bool) byte {
		if on {
			return 0x01
		}
		return 0
	}
	hasMedium := l.med != nil
	lock := byte(0x29) // tray loader, eject, lock
	if l.prevent {
		lock |= 0x02
	}
	blocking := byte(1)
	if cur == profileDVDROM {
		blocking = 16
	}
	feats := []struct {
		code    uint16
		current bool
		desc    []byte
	}{
		{0x0000, true, feature(0x0000, 0x03,
			0x00, profileDVDROM, current(cur == profileDVDROM), 0,
			0x00, profileCDROM, current(cur == profileCDROM), 0)},
		{0x0001, true, feature(0x0001, 0x0b, 0, 0, 0, 8, 0x01, 0, 0, 0)}, // core: USB, DBE
		{0x0002, true, feature(0x0002, 0x07, 0x02, 0, 0, 0)},             // morphing: async events, polled
		{0x0003, true, feature(0x0003, 0x03, lock, 0, 0, 0)},             // removable medium
		{0x0010, hasMedium, feature(0x0010, current(hasMedium), 0, 0, 0x08, 0, 0, blocking, 0, 0)},
		{0x001e, cur == profileCDROM, feature(0x001e, 0x08|current(cur == profileCDROM), 0, 0, 0, 0)},
		{0x001f, cur == profileDVDROM, feature(0x001f, 0x04|current(cur == profileDVDROM))},
		{0x0100, true, feature(0x0100, 0x03)}, // power management
		{0x0103, true, feature(0x0103, 0x03, 0, 0, 0, 0)},
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[6:], cur)
	for _, f := range feats {
		switch rt {
		case 0:
			if f.code < start {
				continue
			}
		case 1:
			if f.code < start || !f.current {
				continue
			}
		case 2:
			if f.code != start {
				continue
			}
		}
		b = append(b, f.desc...)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return x.Send(b)
}

// doEventStatus reports media events, polled only, and consumes the event.
func doEventStatus(l *LUN, cdb []byte, x Xfer) error {
	if cdb[1]&0x01 == 0 {
		return check(InvalidField) // asynchronous notification is not offered
	}
	if cdb[4]&0x10 == 0 {
		// No class we support was asked for: NEA with the supported classes.
		return x.Send([]byte{0, 2, 0x80, 0x10})
	}
	ev := l.event
	l.event = evNone
	var status byte
	if l.med != nil {
		status = 0x02
	}
	return x.Send([]byte{0, 6, 0x04, 0x10, byte(ev), status, 0, 0})
}

func doReadDiscInformation(l *LUN, cdb []byte, x Xfer) error {
	if cdb[1]&0x07 != 0 {
		return check(InvalidField) // only standard disc information
	}
	b := make([]byte, 34)
	b[1] = 32
	b[2] = 0x0e // last session complete, disc complete
	b[3], b[4], b[5], b[6] = 1, 1, 1, 1
	b[7] = 0x20 // unrestricted use
	for i := 16; i < 24; i++ {
		b[i] = 0xff // no next session: lead-in and last possible lead-out unknown
	}
	return x.Send(b)
}

func doReadTrackInformation(l *LUN, cdb []byte, x Xfer) error {
	n := be32(cdb[2:])
	switch cdb[1] & 0x03 {
	case 0: // LBA: the track holding it
		if n >= l.blocks() {
			return check(LBAOutOfRange)
		}
	case 1, 2: // track or session number
		if n != 1 {
			return check(InvalidField)
		}
	default:
		return check(InvalidField)
	}
	b := make([]byte, 36)
	b[1] = 34
	b[2], b[3] = 1, 1
	b[5] = 0x04 // data track, recorded uninterrupted
	b[6] = 0x01 // mode 1
	binary.BigEndian.PutUint32(b[24:], uint32(l.blocks()))
	return x.Send(b)
}

// doReadDVDStructure answers the physical and copyright formats of a
// single-layer DVD-ROM, and refuses on a CD as a real drive does.
func doReadDVDStructure(l *LUN, cdb []byte, x Xfer) error {
	format := cdb[7]
	if cdb[1]&0x0f != 0 { // media type other than DVD
		return check(InvalidField)
	}
	if format == 0xff {
		return x.Send([]byte{0, 10, 0, 0, 0x00, 0x40, 0, 21, 0x01, 0x40, 0, 8})
	}
	if !l.dvd() {
		return check(IncompatibleMedium)
	}
	if cdb[6] != 0 {
		return check(InvalidField) // layer 1 of a single-layer disc
	}
	switch format {
	case 0x00:
		b := make([]byte, 4+17)
		binary.BigEndian.PutUint16(b, uint16(len(b)-2))
		p := b[4:]
		p[0] = 0x01 // DVD-ROM, part version 1
		p[1] = 0x02 // 120 mm, 10.08 Mbit/s
		p[2] = 0x01 // one layer, embossed
		binary.BigEndian.PutUint32(p[4:], 0x030000)
		binary.BigEndian.PutUint32(p[8:], uint32(0x030000+l.blocks()-1))
		return x.Send(b)
	case 0x01:
		return x.Send([]byte{0, 6, 0, 0, 0, 0, 0, 0})
	}
	return check(InvalidField)
}

func doMechanismStatus(l *LUN, cdb []byte, x Xfer) error {
	return x.Send(make([]byte, 8)) // idle, no changer, no slots
}

func doSetSpeed(*LUN, []byte, Xfer) error { return nil }

var mmcCommands = map[byte]*command{
	0x43: {name: "READ TOC/PMA/ATIP", dir: In, length: alloc16(7), run: doReadTOC},
	0x44: {name: "READ HEADER", dir: In, length: alloc16(7), run: doReadHeader},
	0x46: {name: "GET CONFIGURATION", dir: In, length: alloc16(7), run: doGetConfiguration, noMedium: true, attention: true},
	0x4a: {name: "GET EVENT STATUS NOTIFICATION", dir: In, length: alloc16(7), run: doEventStatus, noMedium: true, attention: true},
	0x51: {name: "READ DISC INFORMATION", dir: In, length: alloc16(7), run: doReadDiscInformation},
	0x52: {name: "READ TRACK INFORMATION", dir: In, length: alloc16(7), run: doReadTrackInformation},
	0xad: {name: "READ DVD STRUCTURE", dir: In, length: alloc16(8), run: doReadDVDStructure},
	0xbd: {name: "MECHANISM STATUS", dir: In, length: alloc16(8), run: doMechanismStatus, noMedium: true},
	0xbb: {name: "SET CD SPEED", length: fixed(0), run: doSetSpeed, noMedium: true},
}
