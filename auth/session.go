package auth

import (
	"crypto/sha256"
	"encoding/hex"
)

// Stamp identifies user's credential as the htpasswd file has it now: it
// changes with the password and ok is false once the user is gone, so a
// session made with an older credential can be ended. With auth off every
// user has the same stamp.
func (g *Guard) Stamp(user string) (stamp string, ok bool) {
	if g.path == "" {
		return "", true
	}
	if err := g.reload(); err != nil {
		g.log.Error("auth: keeping the previous users", "err", err)
	}
	g.mu.Lock()
	hash, ok := g.users[user]
	g.mu.Unlock()
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(hash)
	return hex.EncodeToString(sum[:12]), true
}
