// Package streamtoken signs and verifies stream tokens: short-lived,
// HMAC-signed grants for one live stream of one channel. Single use is
// enforced by the stream session workflow, not here.
package streamtoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors Verify returns.
var (
	ErrMalformed = errors.New("malformed stream token")
	ErrSignature = errors.New("stream token signature invalid")
	ErrExpired   = errors.New("stream token expired")
)

// MinSecretLen is the shortest signing secret accepted.
const MinSecretLen = 32

// DefaultExpiry is a stream token's lifetime when nothing configures
// another (config reads VMS_TOKEN_EXPIRY).
const DefaultExpiry = 60 * time.Second

// Claims is what a token grants.
type Claims struct {
	SessionID string    `json:"sid"`
	ChannelID string    `json:"ch"`
	AccountID string    `json:"acct"`
	Quality   string    `json:"q"`
	WorkerURL string    `json:"w"`
	ExpiresAt time.Time `json:"exp"`
	// Record: the session is a channel's continuous recording, started by
	// its supervisor (absent in older tokens: false).
	Record bool `json:"rec,omitempty"`
}

// Signer signs and verifies tokens with one secret.
type Signer struct{ secret []byte }

// NewSigner returns a signer; the secret must be at least MinSecretLen bytes.
func NewSigner(secret string) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("stream token secret must be at least %d bytes", MinSecretLen)
	}
	return &Signer{secret: []byte(secret)}, nil
}

// Sign returns the token for c: base64url(JSON claims) "." base64url(HMAC-SHA256).
func (s *Signer) Sign(c Claims) string {
	body, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

// Verify checks the signature, then the expiry against now.
func (s *Signer) Verify(token string, now time.Time) (Claims, error) {
	var c Claims
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 4096 {
		return c, ErrMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return c, ErrMalformed
	}
	if !hmac.Equal(got, s.mac(payload)) {
		return c, ErrSignature
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(body, &c) != nil || c.SessionID == "" || c.ChannelID == "" {
		return Claims{}, ErrMalformed
	}
	if !now.Before(c.ExpiresAt) {
		return c, ErrExpired
	}
	return c, nil
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(payload))
	return m.Sum(nil)
}
