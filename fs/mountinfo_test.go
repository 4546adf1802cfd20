package fs

import (
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	in := `22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
36 22 0:33 / /var/lib/msdav/images rw,nosuid,nodev master:2 - tmpfs tmpfs rw,size=102400k
37 36 7:0 / /var/lib/msdav/images/usb\040stick ro,relatime - exfat /dev/sda1 ro,uid=0,gid=0,fmask=0022,dmask=0022
38 36 0:40 /sub /var/lib/msdav/images/nfs rw - nfs server:/srv/nfs\011x rw,vers=3,soft
`
	ms, err := ParseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{ID: 22, Parent: 1, Dev: "253:0", Root: "/", Point: "/", Options: "rw,relatime", FSType: "ext4", Source: "/dev/vda", SuperOptions: "rw,discard"},
		{ID: 36, Parent: 22, Dev: "0:33", Root: "/", Point: "/var/lib/msdav/images", Options: "rw,nosuid,nodev", FSType: "tmpfs", Source: "tmpfs", SuperOptions: "rw,size=102400k"},
		{ID: 37, Parent: 36, Dev: "7:0", Root: "/", Point: "/var/lib/msdav/images/usb stick", Options: "ro,relatime", FSType: "exfat", Source: "/dev/sda1", SuperOptions: "ro,uid=0,gid=0,fmask=0022,dmask=0022"},
		{ID: 38, Parent: 36, Dev: "0:40", Root: "/sub", Point: "/var/lib/msdav/images/nfs", Options: "rw", FSType: "nfs", Source: "server:/srv/nfs\tx", SuperOptions: "rw,vers=3,soft"},
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d mounts, want %d", len(ms), len(want))
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("mount %d:\n got %+v\nwant %+v", i, ms[i], want[i])
		}
	}
	if !ms[2].ReadOnly() || ms[1].ReadOnly() {
		t.Error("ReadOnly wrong")
	}
	if v, ok := ms[2].superOption("uid"); !ok || v != "0" {
		t.Errorf("superOption uid = %q %v", v, ok)
	}
	m, ok := mountOf(ms, "/var/lib/msdav/images/usb stick/win.iso")
	if !ok || m.ID != 37 {
		t.Errorf("mountOf = %+v", m)
	}
	m, _ = mountOf(ms, "/var/lib/msdav/imagesX")
	if m.ID != 22 {
		t.Errorf("mountOf prefix confusion: %+v", m)
	}
}

func TestParseMountinfoErrors(t *testing.T) {
	for _, in := range []string{
		"garbage",
		"1 2 3:4 / /x rw shared:1 ext4 /dev/x rw", // no separator
		"a 2 3:4 / /x rw - ext4 /dev/x rw",        // id not a number
		"1 2 3:4 / /x rw -",                       // separator with nothing after
	} {
		if _, err := ParseMountinfo(strings.NewReader(in)); err == nil {
			t.Errorf("%q: parsed without error", in)
		}
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`a\040b`:   "a b",
		`a\134b`:   `a\b`,
		`tail\04`:  `tail\04`,
		`\999`:     `\999`,
		`\400`:     `\400`,
		`plain`:    "plain",
		`\011\012`: "\t\n",
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n")
	f.Add("1 0 0:1 / /a\\040b rw - tmpfs none rw\n")
	f.Add("1 0 0:1 / / rw a:b c:d - x y\n")
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := ParseMountinfo(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.FSType == "" && m.Point == "" {
				t.Fatalf("parsed an empty mount from %q", in)
			}
		}
	})
}
