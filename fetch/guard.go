package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrRefused marks a URL whose host is an address the guard keeps the API
// from reaching (loopback, private, link-local, unspecified).
var ErrRefused = errors.New("address not allowed")

var (
	cgnat   = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT: someone's private network
	thisNet = netip.MustParsePrefix("0.0.0.0/8")     // "this network": reaches the local host on Linux
	nat64   = netip.MustParsePrefix("64:ff9b::/96")  // well-known NAT64: an IPv4 address inside
	bcast   = netip.MustParseAddr("255.255.255.255")
)

// why names the class of an address the guard refuses, or "" when it is a
// public one. v4-mapped (::ffff:a.b.c.d) and NAT64 forms are judged by the
// IPv4 address they carry.
func why(a netip.Addr) string {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified() || thisNet.Contains(a):
		return "an unspecified address"
	case a.IsPrivate() || cgnat.Contains(a):
		return "a private address"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "a link-local address"
	case a.IsMulticast() || a.IsInterfaceLocalMulticast() || a == bcast:
		return "a multicast or broadcast address"
	}
	return ""
}

func refusal(host string, a netip.Addr, class string) error {
	name := a.String()
	if host != "" && host != name {
		name = fmt.Sprintf("%s (%s)", host, a)
	}
	return fmt.Errorf("%w: %s is %s; set [fetch] allow_private = true to fetch from local networks", ErrRefused, name, class)
}

// checkURL refuses up front, with a clear reason, a URL whose host is or
// resolves to an address the guard keeps out. The dialer checks again at
// connect time, which is what stops a name that resolves differently the
// second time (DNS rebinding).
func (m *Manager) checkURL(ctx context.Context, u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: %s: only http and https URLs can be fetched", ErrInvalid, u.Redacted())
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: %s: the URL has no host", ErrInvalid, u.Redacted())
	}
	if m.o.AllowPrivate {
		return nil
	}
	addrs, err := m.lookup(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if c := why(a); c != "" {
			return refusal(host, a, c)
		}
	}
	return nil
}

func (m *Manager) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if m.o.LookupIP != nil {
		return m.o.LookupIP(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// control runs on every socket before it connects, with the address it
// will really reach.
func (m *Manager) control(_, address string, _ syscall.RawConn) error {
	if m.o.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check %s", ErrRefused, address)
	}
	if c := why(ap.Addr()); c != "" {
		return refusal("", ap.Addr(), c)
	}
	return nil
}

// dial resolves through the same lookup as checkURL and connects to each
// address in turn; the dialer's Control has the last word on each.
func (m *Manager) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := m.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: m.o.DialTimeout, Control: m.control}
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	return nil, errors.Join(errs...)
}

// Guarded checks raw as fetch would (http or https, and no local address
// unless fetch.allow_private) and returns it with the client whose dialer
// checks every connection again, for code that reads a URL itself (a
// drive served from a URL).
func (m *Manager) Guarded(ctx context.Context, raw string) (*url.URL, *http.Client, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || raw == "" {
		return nil, nil, fmt.Errorf("%w: \"url\" must be an http or https URL, like https://example.com/os.iso", ErrInvalid)
	}
	if err := m.checkURL(ctx, u); err != nil {
		return nil, nil, err
	}
	return u, m.client, nil
}
