package streamtoken

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	s, err := NewSigner(strings.Repeat("k", 32))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewSigner(strings.Repeat("x", 32))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	claims := Claims{SessionID: "s1", ChannelID: "c1", AccountID: "a1", Quality: "high", WorkerURL: "ws://w", ExpiresAt: now.Add(time.Minute)}
	good := s.Sign(claims)
	payload, sig, _ := strings.Cut(good, ".")
	tampered := strings.Replace(payload, payload[2:3], string(rune(payload[2]^1)), 1) + "." + sig

	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error
	}{
		{"valid", good, now, nil},
		{"expired", good, now.Add(time.Minute), ErrExpired},
		{"other secret", other.Sign(claims), now, ErrSignature},
		{"tampered payload", tampered, now, ErrSignature},
		{"no dot", "abc", now, ErrMalformed},
		{"bad base64 signature", payload + ".!!", now, ErrMalformed},
		{"empty", "", now, ErrMalformed},
		{"huge", strings.Repeat("a", 5000) + ".b", now, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Verify(tt.token, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == nil && got != claims {
				t.Fatalf("claims = %+v, want %+v", got, claims)
			}
		})
	}
}

// TestRecordClaim: the record flag survives signing, and a token signed
// before the flag existed verifies with it false.
func TestRecordClaim(t *testing.T) {
	s, _ := NewSigner(strings.Repeat("k", 32))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := Claims{SessionID: "s1", ChannelID: "c1", ExpiresAt: now.Add(time.Minute), Record: true}
	if got, err := s.Verify(s.Sign(rec), now); err != nil || !got.Record {
		t.Fatalf("record token = %+v, %v", got, err)
	}
	// The JSON an older API signed: no "rec".
	old := base64.RawURLEncoding.EncodeToString([]byte(`{"sid":"s1","ch":"c1","acct":"a1","q":"high","w":"ws://w","exp":"2026-01-02T03:05:05Z"}`))
	got, err := s.Verify(old+"."+base64.RawURLEncoding.EncodeToString(s.mac(old)), now)
	if err != nil || got.Record || got.Quality != "high" {
		t.Fatalf("older token = %+v, %v", got, err)
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := NewSigner("short"); err == nil {
		t.Fatal("a short secret was accepted")
	}
}
