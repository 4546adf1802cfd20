// Package conf loads and validates msdav's TOML configuration: every key's
// default is in Default, and every bad value gets a message a person can act on.
package conf

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration file. Zero values are never used directly:
// Default fills every field, and Load decodes the file on top of it.
type Config struct {
	Server  Server  `toml:"server"`
	Storage Storage `toml:"storage"`
	Gadget  Gadget  `toml:"gadget"`
	Auth    Auth    `toml:"auth"`
	Fetch   Fetch   `toml:"fetch"`
	Redfish Redfish `toml:"redfish"`
}

// Server is the HTTP side.
type Server struct {
	Listen string `toml:"listen"`
	// OpenShare must be set to serve without [auth] on an address other than
	// loopback: an open share on a management network has to be a decision.
	OpenShare bool   `toml:"open_share"`
	TLSCert   string `toml:"tls_cert"`
	TLSKey    string `toml:"tls_key"`
	LogFormat string `toml:"log_format"` // text | json
	// HTTP2 offers HTTP/2 over TLS. Off: HTTP/1.1 only, which moves a
	// 1 GiB download with a third less CPU (make bench, TLS rows).
	HTTP2 bool `toml:"http2"`
	// ShutdownGrace bounds how long SIGTERM waits for running uploads.
	ShutdownGrace Duration `toml:"shutdown_grace"`
	// RuntimeDir holds the running server's unix socket and the store's
	// lock, through which the CLI finds and acts via the server.
	RuntimeDir string `toml:"runtime_dir"`
	// Hosts are names the box answers to (in Host) besides its own
	// addresses and host names: a DNS name, a port forward's address.
	// Others get 421, which keeps DNS rebinding out.
	Hosts []string `toml:"hosts"`
}

// Storage is the image store.
type Storage struct {
	Root string `toml:"root"`
	// Remount keeps the root's filesystem read-only except while something writes.
	Remount bool `toml:"remount"`
	// RemountGrace is how long the store stays rw after the last writer, so a
	// burst of small writes costs one rw/ro cycle.
	RemountGrace Duration `toml:"remount_grace"`
	// PartTimeout bounds a stat or readdir of a mounted subtree (NFS, CIFS) so
	// a dead server marks its part unavailable instead of hanging the store.
	PartTimeout Duration `toml:"part_timeout"`
	// Shared names folders of the store (relative to the root) that other
	// boxes serve too; NFS and CIFS parts are shared without being listed.
	// An image attached here is leased, and 423 on every box while live.
	Shared []string `toml:"shared"`
	// BoxName names this box in its leases; empty: the host name.
	BoxName string `toml:"box_name"`
	// LeaseTTL is how long a lease outlives a box that stopped renewing it.
	LeaseTTL Duration `toml:"lease_ttl"`
}

// Gadget is the USB mass-storage side.
type Gadget struct {
	Mode string `toml:"mode"` // auto | configfs | disabled
	// Backend serves the drives: "kernel" (f_mass_storage) or "userspace"
	// (msdav's own target over FunctionFS: any-size DVDs on a stock kernel).
	Backend  string `toml:"backend"`
	UDC      string `toml:"udc"` // empty: first entry of /sys/class/udc
	Drives   int    `toml:"drives"`
	Configfs string `toml:"configfs"` // where configfs is mounted
	// Name is the gadget directory under usb_gadget. If it exists and was not
	// made by msdav (another service owns the USB device, as kvmd does),
	// msdav adopts its mass_storage functions instead of creating its own.
	Name         string `toml:"name"`
	VendorID     uint16 `toml:"vendor_id"`
	ProductID    uint16 `toml:"product_id"`
	Manufacturer string `toml:"manufacturer"`
	Product      string `toml:"product"`
	Serial       string `toml:"serial"`
	// Inquiry is the SCSI vendor (8) + product (16) the host sees; empty: kernel default.
	Inquiry string `toml:"inquiry"`

	// Sysfs is where sysfs is mounted: the kernel lists USB device
	// controllers in its class/udc.
	Sysfs string `toml:"sysfs"`

	// Not a config key: where the userspace backend mounts each drive's
	// FunctionFS (serve sets it to server.runtime_dir/ffs).
	FFSMounts string `toml:"-"`
}

// Auth is access control for the share and the API.
type Auth struct {
	Htpasswd string `toml:"htpasswd"` // bcrypt entries; empty: no auth
}

// Redfish is the DMTF Redfish service under /redfish/v1.
type Redfish struct {
	Enabled bool `toml:"enabled"`
	// Reset maps ComputerSystem.Reset types (On, ForceOff, GracefulShutdown,
	// ForceRestart, GracefulRestart, PowerCycle, Nmi, PushPowerButton) to
	// shell commands; empty: power is not managed by msdav.
	Reset map[string]string `toml:"reset"`
	// PowerState is a command that prints On or Off; empty: unknown.
	PowerState string `toml:"power_state"`
}

// ResetTypes are the ComputerSystem.Reset values redfish.reset may name.
var ResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "GracefulRestart", "PowerCycle", "ForceOn", "Nmi", "PushPowerButton"}

// Fetch is downloading images from URLs (POST /api/images/fetch).
type Fetch struct {
	// AllowPrivate lets a URL name a loopback, private or link-local
	// address. Off, the API cannot be used to reach the box's own services
	// or the networks behind it.
	AllowPrivate bool `toml:"allow_private"`
}

// Duration is a time.Duration written as "2s" or "500ms" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"2s\" or \"500ms\")", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration the way UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// DefaultRuntimeDir is where the socket and lock live unless configured.
const DefaultRuntimeDir = "/run/msdav"

// Gadget modes.
const (
	ModeAuto     = "auto"
	ModeConfigfs = "configfs"
	ModeDisabled = "disabled"
)

// Values of gadget.backend.
const (
	BackendKernel    = "kernel"
	BackendUserspace = "userspace"
)

// MaxDrives is the most drives one gadget may ask for: the kernel's
// mass_storage function has at most 16 LUNs, and every extra function costs
// endpoints the UDC may not have.
const MaxDrives = 16

// Default returns the configuration used when there is no file: serve ./images
// on loopback, gadget mode auto.
func Default() Config {
	return Config{
		Server: Server{
			Listen:        "127.0.0.1:8080",
			LogFormat:     "text",
			ShutdownGrace: Duration{30 * time.Second},
			RuntimeDir:    DefaultRuntimeDir,
			Hosts:         []string{},
		},
		Storage: Storage{
			Root:         "./images",
			RemountGrace: Duration{2 * time.Second},
			PartTimeout:  Duration{2 * time.Second},
			LeaseTTL:     Duration{2 * time.Minute},
			Shared:       []string{},
		},
		Gadget: Gadget{
			Sysfs:        "/sys",
			FFSMounts:    DefaultRuntimeDir + "/ffs",
			Mode:         ModeAuto,
			Backend:      BackendKernel,
			Drives:       1,
			Configfs:     "/sys/kernel/config",
			Name:         "msdav",
			VendorID:     0x1d6b, // Linux Foundation
			ProductID:    0x0104, // Multifunction Composite Gadget
			Manufacturer: "msdav",
			Product:      "msdav virtual media",
			Serial:       "msdav0",
		},
		Redfish: Redfish{Enabled: true},
	}
}

// Load reads the TOML file at path over the defaults and validates the result.
// An empty path means no file: the defaults, validated.
func Load(path string) (Config, error) {
	c := Default()
	if path == "" {
		return c, c.Validate()
	}
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return c, fmt.Errorf("config %s: %s", path, perr.ErrorWithPosition())
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return c, fmt.Errorf("config %s: unknown key %s (known sections: server, storage, gadget, auth, fetch, redfish; see deploy/msdav.toml)",
			path, strings.Join(keys, ", "))
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Validate checks every value and reports all problems at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if _, port, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen = %q: want host:port, like \"127.0.0.1:8080\" or \":8080\"", c.Server.Listen)
	} else if port == "" {
		bad("server.listen = %q: the port is missing", c.Server.Listen)
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		bad("server.tls_cert and server.tls_key go together: set both or neither")
	}
	switch c.Server.LogFormat {
	case "text", "json":
	default:
		bad("server.log_format = %q: want \"text\" or \"json\"", c.Server.LogFormat)
	}
	if c.Server.ShutdownGrace.Duration < 0 {
		bad("server.shutdown_grace = %s: must not be negative", c.Server.ShutdownGrace)
	}
	if c.Server.RuntimeDir == "" || !filepath.IsAbs(c.Server.RuntimeDir) {
		bad("server.runtime_dir = %q: want an absolute path such as \"/run/msdav\"", c.Server.RuntimeDir)
	}
	for _, h := range c.Server.Hosts {
		if h == "" || strings.ContainsAny(h, "/ \t@?#") || strings.Count(h, ":") == 1 {
			bad("server.hosts %q: want a host name or an address, like \"pikvm.example.net\" or \"203.0.113.7\", without scheme or port", h)
		}
	}
	if strings.TrimSpace(c.Storage.Root) == "" {
		bad("storage.root is empty: name the directory that holds the images")
	}
	if g := c.Storage.RemountGrace.Duration; g < 0 || g > 10*time.Minute {
		bad("storage.remount_grace = %s: want between 0s and 10m", c.Storage.RemountGrace)
	}
	if t := c.Storage.PartTimeout.Duration; t < 100*time.Millisecond || t > 5*time.Minute {
		bad("storage.part_timeout = %s: want between 100ms and 5m", c.Storage.PartTimeout)
	}
	if t := c.Storage.LeaseTTL.Duration; t < 3*time.Second || t > time.Hour {
		bad("storage.lease_ttl = %s: want between 3s and 1h", c.Storage.LeaseTTL)
	}
	for _, sh := range c.Storage.Shared {
		if sh == "" || filepath.IsAbs(sh) || strings.Contains("/"+sh+"/", "/../") {
			bad("storage.shared %q: name a folder inside storage.root, relative to it", sh)
		}
	}
	switch c.Gadget.Mode {
	case ModeAuto, ModeConfigfs, ModeDisabled:
	default:
		bad("gadget.mode = %q: want \"auto\", \"configfs\" or \"disabled\"", c.Gadget.Mode)
	}
	switch c.Gadget.Backend {
	case BackendKernel, BackendUserspace:
	default:
		bad("gadget.backend = %q: want \"kernel\" (f_mass_storage) or \"userspace\" (msdav's own drives over FunctionFS, usb_f_fs)", c.Gadget.Backend)
	}
	if c.Gadget.Drives < 1 || c.Gadget.Drives > MaxDrives {
		bad("gadget.drives = %d: want 1 to %d (drive 0 is the main one)", c.Gadget.Drives, MaxDrives)
	}
	if c.Gadget.Name == "" || strings.ContainsAny(c.Gadget.Name, "/\x00") || c.Gadget.Name == "." || c.Gadget.Name == ".." {
		bad("gadget.name = %q: want a plain directory name such as \"msdav\"", c.Gadget.Name)
	}
	if c.Gadget.Configfs == "" || !filepath.IsAbs(c.Gadget.Configfs) {
		bad("gadget.configfs = %q: want an absolute path such as \"/sys/kernel/config\"", c.Gadget.Configfs)
	}
	if c.Gadget.Sysfs == "" || !filepath.IsAbs(c.Gadget.Sysfs) {
		bad("gadget.sysfs = %q: want an absolute path such as \"/sys\"", c.Gadget.Sysfs)
	}
	if strings.ContainsAny(c.Gadget.UDC, "/\x00") {
		bad("gadget.udc = %q: want a name from /sys/class/udc, or empty for the first one", c.Gadget.UDC)
	}
	if len(c.Gadget.Inquiry) > 24 {
		bad("gadget.inquiry = %q: at most 24 characters (8 vendor + 16 product)", c.Gadget.Inquiry)
	}
	for k, v := range c.Redfish.Reset {
		if !slices.Contains(ResetTypes, k) {
			bad("redfish.reset.%s: not a ResetType (want one of %s)", k, strings.Join(ResetTypes, ", "))
		}
		if strings.TrimSpace(v) == "" {
			bad("redfish.reset.%s is empty: give the command, or leave the key out", k)
		}
	}
	if c.Auth.Htpasswd != "" {
		if _, err := os.Stat(c.Auth.Htpasswd); err != nil {
			bad("auth.htpasswd = %q: %v", c.Auth.Htpasswd, err)
		}
	}
	return errors.Join(errs...)
}

// Loopback reports whether addr (host:port) only listens on loopback.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckExposure refuses an open share on a non-loopback address unless the
// configuration says, in so many words, that it is intended.
func (c Config) CheckExposure() error {
	if c.Auth.Htpasswd != "" || c.Server.OpenShare || Loopback(c.Server.Listen) {
		return nil
	}
	return fmt.Errorf("refusing to serve %s without [auth] htpasswd: anyone on the network could read and replace images; set auth.htpasswd, listen on 127.0.0.1, or set server.open_share = true if an open share is intended", c.Server.Listen)
}
