package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// WebhookPath is where Listen serves the webhook.
const WebhookPath = "/s3-events"

const (
	// DefaultWebhookQueue is the queue a zero capacity gives: hours of
	// segments of a dev setup's few cameras.
	DefaultWebhookQueue = 1024
	maxWebhookBody      = 1 << 20
	// enqueueWait bounds how long a POST waits for room in a full queue;
	// the embedded server gives up on a POST after 3 s.
	enqueueWait    = time.Second
	receiveBatch   = 16
	webhookTimeout = 10 * time.Second
)

// WebhookSource receives the embedded S3 server's bucket events, POSTed
// to it as S3 event notification JSON (objectstore.ServerConfig's
// EventWebhookURL), and queues them for Receive. The server sends each
// event once and never retries, so its events cannot be acknowledged: an
// event dropped because the queue stayed full, or that failed every
// attempt, is logged and lost.
type WebhookSource struct {
	queue  chan Message
	logger *slog.Logger

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{} // closed when Serve returns
}

// NewWebhookSource returns a source queueing up to capacity notifications
// (0: DefaultWebhookQueue); logger may be nil (slog.Default()).
func NewWebhookSource(capacity int, logger *slog.Logger) *WebhookSource {
	if capacity <= 0 {
		capacity = DefaultWebhookQueue
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &WebhookSource{queue: make(chan Message, capacity), logger: logger}
}

// ServeHTTP takes one POSTed notification.
func (s *WebhookSource) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST an S3 event notification", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxWebhookBody+1))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if len(body) > maxWebhookBody {
		http.Error(w, "notification too large", http.StatusRequestEntityTooLarge)
		return
	}
	events, err := ParseNotification(body)
	if err != nil {
		s.logger.Warn("reconcile: bad S3 event notification on the webhook", "err", err, "remote", req.RemoteAddr)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(events) > 0 {
		timer := time.NewTimer(enqueueWait)
		defer timer.Stop()
		select {
		case s.queue <- Message{Events: events}:
		case <-timer.C:
			s.logger.Error("reconcile: S3 event queue full, dropping events", "first_key", events[0].Key, "events", len(events))
			http.Error(w, "queue full", http.StatusServiceUnavailable)
			return
		case <-req.Context().Done():
			return
		}
	}
	// No body: the embedded server never closes response bodies, and only
	// an empty one lets its HTTP client reuse the connection regardless.
	w.WriteHeader(http.StatusNoContent)
}

// Receive returns the queued notifications, waiting for the first.
func (s *WebhookSource) Receive(ctx context.Context) ([]Message, error) {
	var msgs []Message
	select {
	case m := <-s.queue:
		msgs = append(msgs, m)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(msgs) < receiveBatch {
		select {
		case m := <-s.queue:
			msgs = append(msgs, m)
		default:
			return msgs, nil
		}
	}
	return msgs, nil
}

// Listen serves the webhook at WebhookPath on addr ("" means
// 127.0.0.1:0, a free loopback port) until Close, and returns the URL to
// give the S3 server. Keep it on loopback: events are not authenticated
// (though a forged one can only make the reconciler look at an object
// that really is in the bucket).
func (s *WebhookSource) Listen(addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return "", errors.New("reconcile: webhook already listening")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("reconcile: webhook listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: webhookTimeout, ReadTimeout: webhookTimeout}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("reconcile: webhook server", "err", err)
		}
	}()
	return "http://" + ln.Addr().String() + WebhookPath, nil
}

// Close stops the listener Listen started, waiting briefly for requests
// in flight. Events already queued stay available to Receive.
func (s *WebhookSource) Close() error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	<-done
	if err != nil {
		return fmt.Errorf("reconcile: webhook shutdown: %w", err)
	}
	return nil
}
