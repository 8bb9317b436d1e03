package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

func TestAPIKeyAuth(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		acme, other := newAccount(t, s, "acme"), newAccount(t, s, "other")
		acmeKey, otherKey := store.NewSecret("vms_"), store.NewSecret("vms_")
		for _, k := range []struct {
			acct uuid.UUID
			key  string
		}{{acme.ID, acmeKey}, {acme.ID, acmeKey}, {other.ID, otherKey}} {
			// The second add of acmeKey is the documented no-op.
			if err := s.AddAPIKey(ctx, k.acct, "default", k.key); err != nil {
				t.Fatalf("AddAPIKey: %v", err)
			}
		}
		if n := count(t, s, "api_keys", "account_id = ?", acme.ID); n != 1 {
			t.Errorf("acme has %d api keys after adding one twice, want 1", n)
		}
		if n := count(t, s, "api_keys", "hash = ?", acmeKey); n != 0 {
			t.Error("api key stored in clear")
		}

		cases := []struct {
			name    string
			key     string
			want    uuid.UUID
			wantErr error
		}{
			{"right key", acmeKey, acme.ID, nil},
			{"other account's key", otherKey, other.ID, nil},
			{"wrong key", acmeKey + "x", uuid.Nil, store.ErrNotFound},
			{"empty key", "", uuid.Nil, store.ErrNotFound},
			{"hash instead of key", store.HashKey(acmeKey), uuid.Nil, store.ErrNotFound},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a, err := s.AccountByAPIKey(ctx, tc.key)
				if err != tc.wantErr {
					t.Fatalf("AccountByAPIKey: err %v, want %v", err, tc.wantErr)
				}
				if err == nil && a.ID != tc.want {
					t.Errorf("AccountByAPIKey = account %s, want %s", a.ID, tc.want)
				}
			})
		}
	})
}

func TestNewSecret(t *testing.T) {
	a, b := store.NewSecret("vms_"), store.NewSecret("vms_")
	if !strings.HasPrefix(a, "vms_") || len(a) < 4+40 {
		t.Errorf("NewSecret = %q, want vms_ and at least 40 characters", a)
	}
	if a == b {
		t.Error("NewSecret returned the same key twice")
	}
}
