// Package gadget drives Linux USB gadget mass-storage LUNs through configfs:
// it creates or adopts a gadget, attaches and ejects images, and reads state back.
package gadget

import (
	"errors"
	"log/slog"

	"github.com/msdav/msdav/conf"
)

// Gadget owns the mass-storage drives of one USB gadget.
type Gadget struct{}

// Open finds or creates the gadget cfg describes.
// TODO(gadget): configfs.
func Open(cfg conf.Gadget, log *slog.Logger) (*Gadget, error) {
	if cfg.Mode == conf.ModeDisabled {
		return nil, errors.New("gadget.mode is disabled")
	}
	return nil, errors.New("configfs support is not built yet")
}
