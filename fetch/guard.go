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

	"github.com/msdav/msdav/problem"
)

// ErrRefused marks a URL whose host is an address the guard keeps the API
// from reaching (loopback, private, link-local, unspecified).
var ErrRefused = problem.New(422, "address not allowed")

var (
	cgnat      = netip.MustParsePrefix("100.64.0.0/10")   // carrier-grade NAT: someone's private network
	thisNet    = netip.MustParsePrefix("0.0.0.0/8")       // "this network": reaches the local host on Linux
	bench      = netip.MustParsePrefix("198.18.0.0/15")   // benchmarking, never public (RFC 2544)
	classE     = netip.MustParsePrefix("240.0.0.0/4")     // reserved, broadcast included
	compat     = netip.MustParsePrefix("::/96")           // IPv4-compatible, deprecated (RFC 4291)
	translated = netip.MustParsePrefix("::ffff:0:0:0/96") // IPv4-translated (SIIT, RFC 2765)
	sixToFour  = netip.MustParsePrefix("2002::/16")       // 6to4: an IPv4 address in bits 16-47
	teredo     = netip.MustParsePrefix("2001::/32")       // Teredo: tunnels to an IPv4 address
	siteLocal  = netip.MustParsePrefix("fec0::/10")       // deprecated site-local (RFC 3879)
	nat64      = netip.MustParsePrefix("64:ff9b::/96")    // well-known NAT64: an IPv4 address inside
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")  // local-use NAT64 (RFC 8215): a site's own translator
	uniqLocal  = netip.MustParsePrefix("fc00::/7")        // unique local: IPv6's private networks
)

// carried is the IPv4 address an IPv6 form carries and reaches
// (v4-mapped, IPv4-translated, well-known NAT64, 6to4), if any.
func carried(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case a.Is4In6(), translated.Contains(a), nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// why names the class of an address the guard refuses, or "" when it is a
// public one. IPv6 forms that carry an IPv4 address are judged by it.
func why(a netip.Addr) string {
	a = a.WithZone("")
	if v4, ok := carried(a); ok {
		if c := why(v4); c != "" {
			return c
		}
		return ""
	}
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsUnspecified() || thisNet.Contains(a):
		return "an unspecified address"
	case compat.Contains(a):
		return "an IPv4-compatible address (deprecated; it may reach the IPv4 address inside)"
	case teredo.Contains(a):
		return "a Teredo address (a tunnel to an IPv4 address)"
	case nat64Local.Contains(a):
		return "a local NAT64 address (a site's own translator)"
	case siteLocal.Contains(a):
		return "a site-local address"
	case a.IsPrivate() || uniqLocal.Contains(a) || cgnat.Contains(a):
		return "a private address"
	case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "a multicast or broadcast address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case bench.Contains(a):
		return "a benchmarking address"
	case classE.Contains(a):
		return "a reserved address"
	}
	return ""
}

// ambiguous reports whether host ends in a number: inet_aton and browsers
// read "2130706433", "0x7f000001", "0177.0.0.1" and "127.1" as 127.0.0.1,
// while a resolver would look them up as names. Such hosts are refused
// rather than guessed at.
func ambiguous(host string) bool {
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if l := strings.ToLower(last); strings.HasPrefix(l, "0x") {
		return strings.Trim(l[2:], "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// lookupError says a name could not be resolved without the resolver's
// address (a DNS error names the box's name server).
func lookupError(host string, err error) error {
	why := "it could not be resolved"
	var de *net.DNSError
	if errors.As(err, &de) {
		switch {
		case de.IsNotFound:
			why = "no such host"
		case de.IsTimeout:
			why = "the name server did not answer in time"
		default:
			why = "the name server failed"
		}
	} else if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: cannot resolve %s: %s", ErrRemote, host, why)
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
	if _, err := netip.ParseAddr(host); err != nil && ambiguous(host) {
		return fmt.Errorf("%w: %s: the host %q is ambiguous (a number that some read as an IPv4 address and others look up as a name); write the address as a.b.c.d", ErrInvalid, u.Redacted(), host)
	}
	if m.o.AllowPrivate {
		return nil
	}
	addrs, err := m.lookup(ctx, host)
	if err != nil {
		return err
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
	var addrs []netip.Addr
	var err error
	if m.o.LookupIP != nil {
		addrs, err = m.o.LookupIP(ctx, host)
	} else {
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	if err != nil {
		return nil, lookupError(host, err)
	}
	return addrs, nil
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
