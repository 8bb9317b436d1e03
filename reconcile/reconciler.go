package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opennvr/vms/activities"
	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/objectstore"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
)

// DefaultGrace is a Grace that lets a healthy media worker's notification
// (normally within a second or two of the upload, and retried with backoff
// of up to 30 s) win comfortably.
const DefaultGrace = time.Minute

const (
	defaultAttempts    = 3
	defaultRetryDelay  = time.Second
	maxReceiveBackoff  = 30 * time.Second
	ackTimeout         = 10 * time.Second
	objectCreatedEvent = "ObjectCreated:"
)

// Recorder records a segment idempotently on its key and wakes the clips
// waiting for it; *activities.Activities implements it.
type Recorder interface {
	RecordLateSegment(ctx context.Context, sessionID, channelID string, seg recording.SegmentReport) error
}

// Objects reads segment objects; *objectstore.Client implements it.
type Objects interface {
	Head(ctx context.Context, key string) (objectstore.ObjectInfo, error)
	Get(ctx context.Context, key string) (io.ReadCloser, objectstore.ObjectInfo, error)
}

// Outcome says what Handle did with an event.
type Outcome int

const (
	// Ignored: not an object created under recordings/ in the bucket.
	Ignored Outcome = iota
	// Invalid: a recordings/ object that cannot be recorded — a malformed
	// key, an object gone since, unreadable media or a deleted channel.
	Invalid
	// Present: already recorded, by the worker's notification or an
	// earlier event.
	Present
	// Recorded: recorded now; the worker's notification never arrived.
	Recorded
)

func (o Outcome) String() string {
	switch o {
	case Ignored:
		return "ignored"
	case Invalid:
		return "invalid"
	case Present:
		return "present"
	case Recorded:
		return "recorded"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Reconciler records the segments S3 events reveal and the database lacks.
type Reconciler struct {
	Store    *store.Store
	Objects  Objects
	Recorder Recorder
	// Bucket is the recordings bucket; events of other buckets are
	// ignored. Empty accepts every bucket.
	Bucket string
	// Grace is how long after an object's creation Run waits before looking
	// at it, so that the worker's own notification normally comes first and
	// the event costs one indexed lookup. Zero looks at once, which is
	// still correct: both paths record idempotently on the key. With SQS
	// prefer the queue's delivery delay (which holds messages without
	// holding a poller) and leave this zero.
	Grace time.Duration
	// Workers is how many messages Run handles at once (default 1).
	Workers int
	// Attempts is how often Run tries an event that failed for a reason
	// that may pass (database or S3 unavailable) before it leaves the
	// message unacknowledged (default 3). RetryDelay is the first pause
	// between attempts, doubling after each (default 1 s).
	Attempts   int
	RetryDelay time.Duration
	Logger     *slog.Logger
}

// Run handles src's messages until ctx ends; it returns nil once its
// workers have stopped. A message is acknowledged once all its events are
// handled — recorded, found present, or found unusable (logged and
// skipped); one that keeps failing, or is in hand when ctx ends, is left
// for the source to deliver again.
func (r *Reconciler) Run(ctx context.Context, src Source) error {
	if r.Store == nil || r.Objects == nil || r.Recorder == nil {
		return errors.New("reconcile: Store, Objects and Recorder are required")
	}
	var wg sync.WaitGroup
	for range max(r.Workers, 1) {
		wg.Go(func() { r.loop(ctx, src) })
	}
	wg.Wait()
	return nil
}

func (r *Reconciler) loop(ctx context.Context, src Source) {
	backoff := r.retryDelay()
	for ctx.Err() == nil {
		msgs, err := src.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log().Warn("reconcile: receive S3 events", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, maxReceiveBackoff)
			continue
		}
		backoff = r.retryDelay()
		for _, m := range msgs {
			r.handleMessage(ctx, m)
		}
	}
}

func (r *Reconciler) handleMessage(ctx context.Context, m Message) {
	if !sleep(ctx, r.graceLeft(m)) {
		return
	}
	for _, ev := range m.Events {
		if !r.handleWithRetry(ctx, ev) {
			return
		}
	}
	if m.Ack == nil {
		return
	}
	// Ack even if ctx has just ended: the events are handled, and an ack
	// spares their redelivery.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := m.Ack(actx); err != nil {
		r.log().Warn("reconcile: acknowledge S3 events (they will be delivered again)", "err", err)
	}
}

// graceLeft is how long to wait until every event of m is Grace old.
func (r *Reconciler) graceLeft(m Message) time.Duration {
	if r.Grace <= 0 || len(m.Events) == 0 {
		return 0
	}
	var newest time.Time
	for _, ev := range m.Events {
		if ev.Time.After(newest) {
			newest = ev.Time
		}
	}
	if newest.IsZero() {
		return r.Grace
	}
	// A clock far ahead of ours must not stall the message.
	return min(time.Until(newest.Add(r.Grace)), r.Grace)
}

// handleWithRetry reports whether ev is done with (handled, or unusable).
func (r *Reconciler) handleWithRetry(ctx context.Context, ev Event) bool {
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = defaultAttempts
	}
	delay := r.retryDelay()
	for i := 1; ; i++ {
		_, err := r.safeHandle(ctx, ev)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false // shutting down; the source keeps the event
		}
		log := r.log().With("bucket", ev.Bucket, "key", ev.Key, "err", err)
		if i >= attempts {
			log.Error("reconcile: S3 event not handled; left for redelivery", "attempts", i)
			return false
		}
		log.Warn("reconcile: S3 event failed, retrying", "attempt", i, "retry_in", delay)
		if !sleep(ctx, delay) {
			return false
		}
		delay *= 2
	}
}

// safeHandle keeps a bug triggered by one event from taking the process
// down with it.
func (r *Reconciler) safeHandle(ctx context.Context, ev Event) (out Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reconcile: panic: %v", p)
			r.log().Error("reconcile: panic handling S3 event", "key", ev.Key, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	return r.Handle(ctx, ev)
}

// Handle records the segment ev reveals unless it is recorded already. It
// returns an error only for failures that may pass (database or S3
// unavailable); everything ev itself is wrong about is an Outcome, logged.
func (r *Reconciler) Handle(ctx context.Context, ev Event) (Outcome, error) {
	if !strings.HasPrefix(ev.Name, objectCreatedEvent) || !strings.HasPrefix(ev.Key, recording.RecordingsPrefix) ||
		r.Bucket != "" && ev.Bucket != r.Bucket {
		return Ignored, nil
	}
	log := r.log().With("key", ev.Key)
	channelID, sessionID, start, err := recording.ParseRecordingKey(ev.Key)
	if err != nil {
		log.Warn("reconcile: skipping object with a malformed recording key", "err", err)
		return Invalid, nil
	}
	log = log.With("channel", channelID, "session", sessionID)

	exists, err := r.Store.DB.NewSelect().Model((*store.Recording)(nil)).Where("key = ?", ev.Key).Exists(ctx)
	if err != nil {
		return 0, fmt.Errorf("reconcile: look up recording: %w", err)
	}
	if exists {
		log.Debug("reconcile: segment already recorded")
		return Present, nil
	}
	if _, err := r.Store.ChannelByID(ctx, channelID); errors.Is(err, store.ErrNotFound) {
		log.Info("reconcile: skipping segment of a deleted channel")
		return Invalid, nil
	} else if err != nil {
		return 0, fmt.Errorf("reconcile: read channel: %w", err)
	}

	seg, err := r.describe(ctx, ev.Key, start)
	switch {
	case errors.Is(err, objectstore.ErrNotFound):
		log.Info("reconcile: skipping segment deleted since its event")
		return Invalid, nil
	case errors.Is(err, media.ErrBadSegment):
		log.Warn("reconcile: skipping unreadable segment", "err", err)
		return Invalid, nil
	case err != nil:
		return 0, err
	}

	err = r.Recorder.RecordLateSegment(ctx, sessionID.String(), channelID.String(), seg)
	if activities.HasErrorType(err, activities.ErrChannelDeleted, activities.ErrBadInput) {
		log.Warn("reconcile: segment refused", "err", err)
		return Invalid, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reconcile: record segment: %w", err)
	}
	log.Info("reconcile: recorded segment whose notification was lost",
		"start", seg.Start, "end", seg.End, "size", seg.Size)
	return Recorded, nil
}

// describe builds the segment's report from the object: from the metadata
// the media worker uploads it with, or, for an object without it, from the
// media itself.
func (r *Reconciler) describe(ctx context.Context, key string, start time.Time) (recording.SegmentReport, error) {
	info, err := r.Objects.Head(ctx, key)
	if err != nil {
		return recording.SegmentReport{}, err
	}
	// Metadata written for another key (an object copied or renamed) does
	// not describe this one; the start in the key decides.
	if rep, ok := recording.SegmentReportFromMetadata(key, info.Size, info.Metadata); ok && store.UTCms(rep.Start).Equal(start) {
		return recording.SegmentReport{Key: key, Start: start, End: rep.End, DurationMS: rep.DurationMS,
			Size: info.Size, Codec: rep.Codec}, nil
	}
	body, _, err := r.Objects.Get(ctx, key)
	if err != nil {
		return recording.SegmentReport{}, err
	}
	defer body.Close()
	probe, err := media.ProbeSegment(body)
	if err != nil {
		return recording.SegmentReport{}, fmt.Errorf("reconcile: read %s: %w", key, err)
	}
	if probe.Duration <= 0 {
		return recording.SegmentReport{}, fmt.Errorf("reconcile: read %s: %w: no media", key, media.ErrBadSegment)
	}
	return recording.SegmentReport{Key: key, Start: start, End: start.Add(probe.Duration),
		DurationMS: probe.Duration.Milliseconds(), Size: info.Size, Codec: probe.Codec}, nil
}

func (r *Reconciler) retryDelay() time.Duration {
	if r.RetryDelay <= 0 {
		return defaultRetryDelay
	}
	return r.RetryDelay
}

func (r *Reconciler) log() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

// sleep waits d, or less if ctx ends first; it reports whether ctx is
// still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
