// Package auth guards the share and the API with HTTP Basic auth checked
// against an htpasswd file of bcrypt entries.
package auth

import (
	"log/slog"
	"net/http"
)

// Guard checks credentials; a Guard with no htpasswd lets everyone in.
type Guard struct {
	log *slog.Logger
}

// New loads htpasswd (empty: no auth).
// TODO(auth): htpasswd + bcrypt.
func New(htpasswd string, log *slog.Logger) (*Guard, error) {
	return &Guard{log: log}, nil
}

// Wrap puts h behind the guard.
func (g *Guard) Wrap(h http.Handler) http.Handler { return h }
