package agent

import (
	"errors"
	"net/url"
	"strings"
)

// RedactURL returns raw with any user info removed, for logs and errors.
// A string that does not parse as a URL is replaced entirely, since it
// might still hold a password.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	return u.String()
}

// scrubbedError hides credentials that a library may have put into an
// error message, while keeping the error chain for errors.Is and errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubError removes the user name and password of u from err's message.
// Errors from third-party code (dialers, RTSP and HTTP clients) may echo the
// address they were given; this is the last line of defence.
func scrubError(err error, u *url.URL) error {
	if err == nil || u == nil || u.User == nil {
		return err
	}
	msg := err.Error()
	secrets := []string{u.User.String()}
	if p, ok := u.User.Password(); ok && p != "" {
		secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
	}
	if name := u.User.Username(); name != "" {
		secrets = append(secrets, name)
	}
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "redacted")
			changed = true
		}
	}
	if !changed {
		return err
	}
	var se *scrubbedError
	if errors.As(err, &se) {
		return &scrubbedError{msg: msg, err: se.err}
	}
	return &scrubbedError{msg: msg, err: err}
}
