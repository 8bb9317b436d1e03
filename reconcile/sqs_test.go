package reconcile_test

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/objectstore/s3test"
	"github.com/opennvr/vms/reconcile"
)

// TestSQSSource feeds real S3 event notification bodies through the SQS
// adapter, against a server speaking the SQS JSON protocol.
func TestSQSSource(t *testing.T) {
	objects, _ := s3test.Start(t)
	w := newWorld(t, objects)
	q := newFakeSQS(t)
	run(t, w.rec, newSQS(t, q))
	bucket := objects.Bucket()

	direct, wrapped, mixed := w.newSegment(t0), w.newSegment(t0.Add(segLen)), w.newSegment(t0.Add(2*segLen))
	for _, seg := range []*segment{&direct, &wrapped, &mixed} {
		w.upload(t, seg, true)
	}
	reported := w.newSegment(t0.Add(3 * segLen))
	w.upload(t, &reported, false)
	first := w.notify(t, reported)

	at := time.Now()
	messages := map[string]string{
		"S3 event":          s3Event(bucket, at, s3Object{key: direct.report.Key, size: direct.report.Size}),
		"SNS-wrapped event": snsWrapped(s3Event(bucket, at, s3Object{key: wrapped.report.Key, size: wrapped.report.Size})),
		"several records": s3Event(bucket, at,
			s3Object{key: fmt.Sprintf("snapshots/%s/%s.jpg", w.channel, uuid.New()), size: 10},
			s3Object{key: mixed.report.Key, size: mixed.report.Size},
			s3Object{key: mixed.report.Key, size: mixed.report.Size, event: "ObjectRemoved:Delete"}),
		"already reported":   s3Event(bucket, at, s3Object{key: reported.report.Key, size: reported.report.Size}),
		"redelivered":        s3Event(bucket, at, s3Object{key: direct.report.Key, size: direct.report.Size}),
		"test event":         s3TestEvent,
		"not a notification": `{"hello":"world"}`,
		"malformed key":      s3Event(bucket, at, s3Object{key: fmt.Sprintf("recordings/%s/x.mp4", w.channel)}),
		"other bucket":       s3Event("another-bucket", at, s3Object{key: direct.report.Key}),
	}
	ids := map[string]string{}
	for name, body := range messages {
		ids[name] = q.send(body)
	}
	for name, id := range ids {
		q.waitDeleted(t, name, id)
	}

	w.checkRow(t, direct, direct.report.End)
	w.checkRow(t, wrapped, wrapped.report.End)
	w.checkRow(t, mixed, mixed.report.End)
	if r := w.only(t, reported.report.Key); r.ID != first.ID {
		t.Fatalf("reported segment's row %s replaced by %s", first.ID, r.ID)
	}
	if rows := w.recordings(t); len(rows) != 4 {
		t.Fatalf("listing has %d recordings, want 4", len(rows))
	}
	if n := w.recorder.count(); n != 3 {
		t.Fatalf("recorder called %d times, want 3 (the lost segments)", n)
	}
}

// TestSQSSourceKeepsFailedMessages: a message whose segment cannot be
// recorded yet stays in the queue and is handled once it can be.
func TestSQSSourceKeepsFailedMessages(t *testing.T) {
	objects, _ := s3test.Start(t)
	w := newWorld(t, objects)
	w.rec.Attempts = 2
	q := newFakeSQS(t)
	run(t, w.rec, newSQS(t, q))

	seg := w.newSegment(t0)
	w.upload(t, &seg, true)
	w.recorder.setFailing(true)
	id := q.send(s3Event(objects.Bucket(), time.Now(), s3Object{key: seg.report.Key, size: seg.report.Size}))

	// Received, failed, not deleted: it comes back after its visibility
	// timeout, and fails again.
	eventually(t, "the message to be delivered twice", func() bool { return q.receiveCount(id) >= 2 })
	eventually(t, "the second delivery to fail", func() bool { return w.recorder.count() >= 4 })
	if q.isDeleted(id) {
		t.Fatal("message deleted although its segment was not recorded")
	}
	if rows := w.recordings(t); len(rows) != 0 {
		t.Fatalf("recordings despite the failure: %+v", rows)
	}

	w.recorder.setFailing(false)
	q.waitDeleted(t, "failed message", id)
	w.checkRow(t, seg, seg.report.End)
}

func newSQS(t *testing.T, q *fakeSQS) *reconcile.SQSSource {
	t.Helper()
	src, err := reconcile.NewSQSSource(t.Context(), reconcile.SQSConfig{
		QueueURL: q.queueURL, Region: "eu-west-1", Endpoint: q.srv.URL,
		AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		WaitTime: time.Second, VisibilityTimeout: time.Second, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// fakeSQS is one SQS queue behind the SQS JSON 1.0 protocol (what
// aws-sdk-go-v2 speaks): ReceiveMessage with long polling and visibility
// timeouts, DeleteMessage by receipt handle. It fails the test on any
// request the real service would refuse.
type fakeSQS struct {
	t        *testing.T
	srv      *httptest.Server
	queueURL string

	mu      sync.Mutex
	msgs    []*fakeMessage
	arrived chan struct{} // closed and replaced when a message is sent
}

type fakeMessage struct {
	id, body  string
	receipt   string // of the latest receive
	visibleAt time.Time
	received  int
	deleted   bool
}

func newFakeSQS(t *testing.T) *fakeSQS {
	q := &fakeSQS{t: t, arrived: make(chan struct{})}
	q.srv = httptest.NewServer(q)
	t.Cleanup(q.srv.Close)
	q.queueURL = q.srv.URL + "/123456789012/vms-recordings"
	return q
}

// send queues a message as S3 would and returns its id.
func (q *fakeSQS) send(body string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := &fakeMessage{id: uuid.NewString(), body: body}
	q.msgs = append(q.msgs, m)
	close(q.arrived)
	q.arrived = make(chan struct{})
	return m.id
}

func (q *fakeSQS) find(id string) fakeMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.msgs {
		if m.id == id {
			return *m
		}
	}
	q.t.Fatalf("no message %s", id)
	return fakeMessage{}
}

func (q *fakeSQS) receiveCount(id string) int { return q.find(id).received }
func (q *fakeSQS) isDeleted(id string) bool   { return q.find(id).deleted }

func (q *fakeSQS) waitDeleted(t *testing.T, name, id string) {
	t.Helper()
	eventually(t, "message "+name+" to be deleted", func() bool { return q.isDeleted(id) })
}

func (q *fakeSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "AmazonSQS."
	target := r.Header.Get("X-Amz-Target")
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		q.fail(w, "InvalidAction", fmt.Sprintf("%s %s", r.Method, r.URL.Path))
		return
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.0":
		q.fail(w, "InvalidParameterValue", "Content-Type "+r.Header.Get("Content-Type"))
		return
	case !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") ||
		!strings.Contains(r.Header.Get("Authorization"), "/eu-west-1/sqs/aws4_request"):
		q.fail(w, "InvalidSecurity", "not signed for sqs in eu-west-1: "+r.Header.Get("Authorization"))
		return
	case !strings.HasPrefix(target, prefix):
		q.fail(w, "InvalidAction", "X-Amz-Target "+target)
		return
	}
	var in struct {
		QueueURL            string `json:"QueueUrl"`
		MaxNumberOfMessages int
		WaitTimeSeconds     int
		VisibilityTimeout   int
		ReceiptHandle       string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		q.fail(w, "InvalidParameterValue", err.Error())
		return
	}
	if in.QueueURL != q.queueURL {
		q.fail(w, "QueueDoesNotExist", in.QueueURL)
		return
	}
	switch strings.TrimPrefix(target, prefix) {
	case "ReceiveMessage":
		if in.MaxNumberOfMessages < 1 || in.MaxNumberOfMessages > 10 || in.WaitTimeSeconds < 0 || in.WaitTimeSeconds > 20 {
			q.fail(w, "InvalidParameterValue", fmt.Sprintf("%+v", in))
			return
		}
		q.receive(w, r, in.MaxNumberOfMessages, time.Duration(in.WaitTimeSeconds)*time.Second,
			time.Duration(in.VisibilityTimeout)*time.Second)
	case "DeleteMessage":
		q.delete(w, in.ReceiptHandle)
	default:
		q.fail(w, "UnsupportedOperation", target)
	}
}

// receive long-polls for up to wait; received messages stay hidden for
// visibility (30 s, the queue default, when zero).
func (q *fakeSQS) receive(w http.ResponseWriter, r *http.Request, max int, wait, visibility time.Duration) {
	if visibility == 0 {
		visibility = 30 * time.Second
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	type message struct {
		MessageID     string `json:"MessageId"`
		ReceiptHandle string
		MD5OfBody     string
		Body          string
	}
	for {
		q.mu.Lock()
		now := time.Now()
		var out []message
		var nextVisible time.Time
		for _, m := range q.msgs {
			if m.deleted {
				continue
			}
			if m.visibleAt.After(now) {
				if nextVisible.IsZero() || m.visibleAt.Before(nextVisible) {
					nextVisible = m.visibleAt
				}
				continue
			}
			if len(out) == max {
				break
			}
			m.received++
			m.receipt = uuid.NewString()
			m.visibleAt = now.Add(visibility)
			sum := md5.Sum([]byte(m.body))
			out = append(out, message{MessageID: m.id, ReceiptHandle: m.receipt, MD5OfBody: hex.EncodeToString(sum[:]), Body: m.body})
		}
		arrived := q.arrived
		q.mu.Unlock()
		if len(out) > 0 {
			q.reply(w, map[string]any{"Messages": out})
			return
		}
		var becomesVisible <-chan time.Time
		if !nextVisible.IsZero() {
			timer := time.NewTimer(time.Until(nextVisible))
			defer timer.Stop()
			becomesVisible = timer.C
		}
		select {
		case <-arrived:
		case <-becomesVisible:
		case <-deadline.C:
			q.reply(w, map[string]any{})
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (q *fakeSQS) delete(w http.ResponseWriter, receipt string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.msgs {
		if m.receipt == receipt && receipt != "" {
			m.deleted = true
			q.reply(w, map[string]any{})
			return
		}
	}
	w.Header().Set("x-amzn-query-error", "ReceiptHandleIsInvalid;Sender")
	q.replyStatus(w, http.StatusBadRequest, map[string]string{
		"__type": "com.amazonaws.sqs#ReceiptHandleIsInvalid", "message": "The input receipt handle is invalid."})
}

// fail answers a request the real service would refuse, and fails the test.
func (q *fakeSQS) fail(w http.ResponseWriter, code, detail string) {
	q.t.Errorf("fake SQS: %s: %s", code, detail)
	q.replyStatus(w, http.StatusBadRequest, map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": detail})
}

func (q *fakeSQS) reply(w http.ResponseWriter, v any) { q.replyStatus(w, http.StatusOK, v) }

func (q *fakeSQS) replyStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", uuid.NewString())
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
