package fetch

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// The classes the guard refuses, each with the reason it gives: IPv6
// forms that carry or reach an IPv4 address are judged by it or refused.
func TestWhy(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1", "loopback"},
		{"::1", "loopback"},
		{"::127.0.0.1", "IPv4-compatible"}, // ::/96, deprecated
		{"::8.8.8.8", "IPv4-compatible"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.1.2.3", "private"},
		{"::ffff:0:127.0.0.1", "loopback"}, // IPv4-translated (SIIT)
		{"2002:7f00:1::1", "loopback"},     // 6to4 of 127.0.0.1
		{"2002:c0a8:101::1", "private"},    // 6to4 of 192.168.1.1
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
		{"fec0::1", "site-local"},
		{"64:ff9b::a00:1", "private"},
		{"64:ff9b:1::8.8.8.8", "local NAT64"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"fe80::1", "link-local"},
		{"169.254.169.254", "link-local"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"ff05::2", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"100.64.0.1", "private"},
		{"198.18.0.1", "benchmarking"},
		{"240.0.0.1", "reserved"},
		{"8.8.8.8", ""},
		{"2001:4860:4860::8888", ""},
		{"2002:808:808::1", ""}, // 6to4 of a public address
		{"64:ff9b::808:808", ""},
	} {
		got := why(netip.MustParseAddr(tc.addr))
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("why(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// Hosts written as numbers in the forms inet_aton and browsers read
// (decimal, hex, octal, short) are refused as ambiguous, not sent to DNS.
func TestAmbiguousHosts(t *testing.T) {
	m := &Manager{o: Options{LookupIP: func(ctx context.Context, host string) ([]netip.Addr, error) {
		t.Errorf("%s was looked up", host)
		return nil, errors.New("no")
	}}}
	for _, h := range []string{"2130706433", "0x7f000001", "0177.0.0.1", "127.1", "127.0.1", "0x7f.1", "1.2.3.4.", "017700000001", "1.2.3.0x4"} {
		err := m.checkURL(context.Background(), &url.URL{Scheme: "http", Host: h})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ambiguous") {
			t.Errorf("%s: %v, want refused as ambiguous", h, err)
		}
	}
	m.o.LookupIP = func(ctx context.Context, host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
	}
	for _, h := range []string{"example.com", "1.2.3.example", "cafe.be", "0x.com", "123.example"} {
		if err := m.checkURL(context.Background(), &url.URL{Scheme: "http", Host: h}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
}

// A failed lookup is the remote side's problem (502), and its text names
// neither the box's resolver nor its address.
func TestLookupFailure(t *testing.T) {
	m := &Manager{o: Options{LookupIP: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, Server: "10.11.12.13:53", IsNotFound: true}
	}}}
	err := m.checkURL(context.Background(), &url.URL{Scheme: "http", Host: "nowhere.example"})
	if !errors.Is(err, ErrRemote) || strings.Contains(err.Error(), "10.11.12.13") || !strings.Contains(err.Error(), "nowhere.example") {
		t.Errorf("lookup failure: %v, want ErrRemote naming the host, not the resolver", err)
	}
	_, err = m.dial(context.Background(), "tcp", "nowhere.example:80")
	if err == nil || strings.Contains(err.Error(), "10.11.12.13") {
		t.Errorf("dial: %v", err)
	}
}

func FuzzGuard(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::127.0.0.1", "2002:7f00:1::1", "64:ff9b:1::1", "8.8.8.8", "0x7f000001", "example.com", "[::1]", "1.2.3.4."} {
		f.Add(s)
	}
	m := &Manager{o: Options{LookupIP: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, Server: "10.11.12.13:53", IsNotFound: true}
	}}}
	f.Fuzz(func(t *testing.T, host string) {
		u := &url.URL{Scheme: "http", Host: host}
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			u.Host = "[" + host + "]"
		}
		err := m.checkURL(context.Background(), u)
		if err == nil {
			if a, perr := netip.ParseAddr(u.Hostname()); perr != nil || why(a) != "" {
				t.Fatalf("%q passed with every lookup failing", host)
			}
			return
		}
		if strings.Contains(err.Error(), "10.11.12.13") {
			t.Fatalf("%q: the resolver's address leaked: %v", host, err)
		}
		if a, perr := netip.ParseAddr(u.Hostname()); perr == nil {
			if c := why(a); c != "" && !errors.Is(err, ErrRefused) {
				t.Fatalf("%s is %s but checkURL said %v", a, c, err)
			}
			// Whatever IPv4 address an IPv6 form carries, the form is not
			// judged more kindly than the address itself.
			if v4, ok := carried(a); ok && why(v4) != "" && why(a) == "" {
				t.Fatalf("%s carries %s (%s) but passes", a, v4, why(v4))
			}
		}
	})
}
