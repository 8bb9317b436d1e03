// Package reconcile records recording segments whose media worker
// notification never reached the control plane. It consumes S3
// ObjectCreated events for recordings/ keys — from SQS on AWS, or from the
// embedded S3 server's event webhook in `vms dev` — and records any segment
// the database does not hold yet, through the same idempotent path as a
// late notification, so the two paths never make two rows.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Event is one S3 bucket event.
type Event struct {
	// Name is the event type without the "s3:" prefix some servers add,
	// e.g. "ObjectCreated:Put".
	Name   string
	Bucket string
	Key    string // decoded (S3 URL-encodes keys in events)
	Size   int64
	ETag   string    // without quotes
	Time   time.Time // when S3 recorded the event; zero if not given
}

// Message is one delivery of a Source: the events of one notification.
type Message struct {
	Events []Event
	// Ack tells the source the events are handled, so it must not deliver
	// them again (SQS: delete the message). Nil when the source cannot
	// redeliver anyway.
	Ack func(ctx context.Context) error
}

// Source delivers S3 event notifications.
type Source interface {
	// Receive blocks until at least one message is available or ctx ends.
	// Messages not acknowledged may be delivered again.
	Receive(ctx context.Context) ([]Message, error)
}

// ErrNotNotification is wrapped by ParseNotification's errors: the body is
// no S3 event notification and never will be.
var ErrNotNotification = errors.New("not an S3 event notification")

// notification is every shape a notification body may take.
type notification struct {
	Records []record `json:"Records"`
	// S3 sends a test event when a notification target is configured.
	Event string `json:"Event"`
	// SNS envelope (S3 → SNS → SQS without raw message delivery).
	Type    string `json:"Type"`
	Message string `json:"Message"`
}

type record struct {
	EventName string `json:"eventName"`
	EventTime string `json:"eventTime"`
	S3        struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key  string  `json:"key"`
			Size int64   `json:"size"`
			ETag *string `json:"eTag"`
		} `json:"object"`
	} `json:"s3"`
}

// ParseNotification reads an S3 event notification body: {"Records": […]}
// as S3 (and the embedded server) sends it, the same wrapped in an SNS
// envelope, or a test event, which holds no events. Anything else is an
// error wrapping ErrNotNotification.
func ParseNotification(body []byte) ([]Event, error) {
	return parseNotification(body, true)
}

func parseNotification(body []byte, unwrap bool) ([]Event, error) {
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotNotification, err)
	}
	switch {
	case n.Records != nil:
	case n.Event == "s3:TestEvent":
		return nil, nil
	case n.Type == "Notification" && n.Message != "" && unwrap:
		return parseNotification([]byte(n.Message), false)
	case n.Type != "":
		return nil, fmt.Errorf("%w: SNS message of type %q", ErrNotNotification, n.Type)
	default:
		return nil, fmt.Errorf("%w: no Records", ErrNotNotification)
	}
	events := make([]Event, 0, len(n.Records))
	for _, r := range n.Records {
		key := r.S3.Object.Key
		// S3 form-encodes keys in events ("a b" arrives as "a+b"); the
		// embedded server sends them as they are, which for the keys this
		// system writes is the same thing.
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		ev := Event{
			Name:   strings.TrimPrefix(r.EventName, "s3:"),
			Bucket: r.S3.Bucket.Name,
			Key:    key,
			Size:   r.S3.Object.Size,
		}
		if r.S3.Object.ETag != nil {
			ev.ETag = strings.Trim(*r.S3.Object.ETag, `"`)
		}
		if t, err := time.Parse(time.RFC3339Nano, r.EventTime); err == nil {
			ev.Time = t
		}
		events = append(events, ev)
	}
	return events, nil
}
