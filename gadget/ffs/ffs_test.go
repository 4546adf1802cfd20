package ffs

import (
	"encoding/binary"
	"strings"
	"testing"
)

// walk splits a run of USB descriptors by their bLength.
func walk(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])
		if n < 2 || n > len(b) {
			t.Fatalf("descriptor length %d with %d bytes left", n, len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func TestMassStorageDescriptors(t *testing.T) {
	b := MassStorageDescriptors()
	if binary.LittleEndian.Uint32(b) != descsMagicV2 || int(binary.LittleEndian.Uint32(b[4:])) != len(b) {
		t.Fatalf("header %x", b[:8])
	}
	if f := binary.LittleEndian.Uint32(b[8:]); f != hasFSDesc|hasHSDesc|hasSSDesc {
		t.Fatalf("flags %x", f)
	}
	counts := []int{int(binary.LittleEndian.Uint32(b[12:])), int(binary.LittleEndian.Uint32(b[16:])), int(binary.LittleEndian.Uint32(b[20:]))}
	descs := walk(t, b[24:])
	if len(descs) != counts[0]+counts[1]+counts[2] {
		t.Fatalf("%d descriptors, header counts %v", len(descs), counts)
	}
	for i, speed := range []struct {
		name   string
		packet uint16
	}{{"full", 64}, {"high", 512}, {"super", 1024}} {
		start := 0
		for _, c := range counts[:i] {
			start += c
		}
		set := descs[start : start+counts[i]]
		intf := set[0]
		if intf[1] != 4 || intf[4] != 2 || intf[5] != 8 || intf[6] != 6 || intf[7] != 0x50 {
			t.Errorf("%s speed interface %x: want 2 endpoints, class 8/6/0x50", speed.name, intf)
		}
		var eps [][]byte
		for _, d := range set[1:] {
			if d[1] == 5 {
				eps = append(eps, d)
			}
		}
		if len(eps) != 2 || eps[0][2] != 0x81 || eps[1][2] != 0x02 {
			t.Fatalf("%s speed endpoints %x: want IN 0x81 (ep1) then OUT 0x02 (ep2)", speed.name, eps)
		}
		for _, e := range eps {
			if e[3] != 2 || binary.LittleEndian.Uint16(e[4:]) != speed.packet {
				t.Errorf("%s speed endpoint %x: want bulk, max packet %d", speed.name, e, speed.packet)
			}
		}
	}
}

func TestStrings(t *testing.T) {
	b := Strings("msdav drive 0")
	if binary.LittleEndian.Uint32(b) != stringsMagic || int(binary.LittleEndian.Uint32(b[4:])) != len(b) {
		t.Fatalf("header %x", b[:8])
	}
	if binary.LittleEndian.Uint32(b[8:]) != 1 || binary.LittleEndian.Uint32(b[12:]) != 1 || binary.LittleEndian.Uint16(b[16:]) != 0x0409 {
		t.Fatalf("counts or language %x", b[8:18])
	}
	if string(b[18:]) != "msdav drive 0\x00" {
		t.Fatalf("string %q", b[18:])
	}
}

func TestParseEvents(t *testing.T) {
	getMaxLUN := []byte{0xa1, 0xfe, 0, 0, 0, 0, 1, 0, EventSetup, 0, 0, 0}
	enable := []byte{0, 0, 0, 0, 0, 0, 0, 0, EventEnable, 0, 0, 0}
	for _, tc := range []struct {
		name string
		b    []byte
		want []Event
		err  string
	}{
		{"one setup", getMaxLUN, []Event{{EventSetup, Setup{0xa1, 0xfe, 0, 0, 1}}}, ""},
		{"two", append(append([]byte(nil), enable...), getMaxLUN...), []Event{{Type: EventEnable}, {EventSetup, Setup{0xa1, 0xfe, 0, 0, 1}}}, ""},
		{"partial", getMaxLUN[:7], nil, "whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEvents(tc.b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("%v %v", got, err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
			if got[len(got)-1].Type == EventSetup && !got[len(got)-1].Setup.In() {
				t.Error("Get Max LUN is an IN request")
			}
		})
	}
}
