package reconcile_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opennvr/vms/reconcile"
)

func TestWebhookSource(t *testing.T) {
	hook := reconcile.NewWebhookSource(1, testLogger(t))
	key := "recordings/a/b.mp4"
	post := func(method, body string) int {
		req := httptest.NewRequest(method, reconcile.WebhookPath, strings.NewReader(body))
		rec := httptest.NewRecorder()
		hook.ServeHTTP(rec, req)
		if rec.Code == http.StatusNoContent && rec.Body.Len() != 0 {
			t.Errorf("204 with a body: %q", rec.Body)
		}
		return rec.Code
	}
	for _, tc := range []struct {
		name, method, body string
		want               int
	}{
		{"test event", http.MethodPost, s3TestEvent, http.StatusNoContent},
		{"not a notification", http.MethodPost, `{"hello":1}`, http.StatusBadRequest},
		{"GET", http.MethodGet, "", http.StatusMethodNotAllowed},
		{"too large", http.MethodPost, `{"Records":[],"pad":"` + strings.Repeat("x", 1<<20) + `"}`, http.StatusRequestEntityTooLarge},
		{"event", http.MethodPost, s3Event("vms", time.Now(), s3Object{key: key}), http.StatusNoContent},
		// The queue holds one notification: the next waits, then is refused.
		{"queue full", http.MethodPost, s3Event("vms", time.Now(), s3Object{key: key}), http.StatusServiceUnavailable},
	} {
		if got := post(tc.method, tc.body); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	msgs, err := hook.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || len(msgs[0].Events) != 1 || msgs[0].Events[0].Key != key || msgs[0].Ack != nil {
		t.Fatalf("Receive = %+v, want the one queued event, without ack", msgs)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if msgs, err := hook.Receive(ctx); err == nil {
		t.Fatalf("Receive on an empty queue = %+v, want the context's error", msgs)
	}
}
