package fetch

import "regexp"

// userinfo matches the user:password@ of a URL anywhere in a text: a
// scheme, then a user and password without the characters that end them
// (nor quotes or backslashes, so JSON around a URL is never eaten).
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@\s:"\\]*):([^/?#@\s"\\]+)@`)

// Redact replaces the password of every URL in s (a URL, an error text, a
// log line, JSON) with "xxxxx", as url.URL.Redacted does: what msdav shows
// or logs of a URL a person gave it never carries the password.
func Redact(s string) string {
	return userinfo.ReplaceAllString(s, "${1}${2}:xxxxx@")
}
