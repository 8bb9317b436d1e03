package agent

import (
	"sync"
	"time"

	"github.com/opennvr/vms/media"
)

// replayBuffer holds a camera session's frames from the last keyframe of
// the leading track sent to a worker, plus every frame not sent yet. The
// camera's goroutine adds frames, the current worker connection's writer
// takes them in order; a new connection rewinds to the oldest frame held,
// always a keyframe of the leading track, and replays from there with the
// frames' original timestamps.
//
// Why from the last keyframe sent: a worker whose connection ends
// otherwise than by the agent's normal close ends its recording before the
// last keyframe it received (see docs/protocol.md, "Resuming a stream"),
// which is at or before the last keyframe the agent sent. The replay
// starts there, so nothing is recorded twice; and everything from there on
// is held, so nothing is lost unless a bound is hit.
//
// Bounds: QueueBytes of payload and QueueDuration of DTS between the
// oldest and the newest frame. Past either, the oldest GOP is dropped
// whole (up to the next keyframe of the leading track, or everything when
// there is none); frames then wait for a keyframe, so no frame is ever
// held or sent without its keyframe.
type replayBuffer struct {
	p        *Pusher
	leader   uint8
	maxBytes int
	maxDur   time.Duration
	// notify wakes the writer when a frame is added.
	notify chan struct{}

	mu      sync.Mutex
	frames  []media.Frame
	base    uint64 // sequence number of frames[0]
	nextSeq uint64 // sequence number of the next frame to send
	bytes   int
	// sentHigh is one past the highest sequence number ever sent: frames
	// below it reached a worker once, so dropping them is no loss to count.
	sentHigh uint64
	full     bool // dropping GOPs; logged once per episode
}

func newReplayBuffer(p *Pusher, leader uint8) *replayBuffer {
	b := &replayBuffer{p: p, leader: leader, maxBytes: p.QueueBytes, maxDur: p.QueueDuration,
		notify: make(chan struct{}, 1)}
	if b.maxBytes <= 0 {
		b.maxBytes = DefaultQueueBytes
	}
	if b.maxDur <= 0 {
		b.maxDur = DefaultQueueDuration
	}
	return b
}

func (b *replayBuffer) isKey(f media.Frame) bool { return f.Keyframe && f.Track == b.leader }

// add appends a frame from the camera, dropping the oldest GOPs past the
// bounds. Frames before the first keyframe are not held.
func (b *replayBuffer) add(f media.Frame) {
	b.mu.Lock()
	if len(b.frames) == 0 && !b.isKey(f) {
		if b.full {
			b.p.drops.Add(1) // waiting for a keyframe after a drop
		}
		b.mu.Unlock()
		return
	}
	b.frames = append(b.frames, f)
	b.bytes += len(f.Payload)
	for len(b.frames) > 0 && (b.bytes > b.maxBytes || b.frames[len(b.frames)-1].DTS-b.frames[0].DTS > b.maxDur) {
		b.dropOldestGOP()
	}
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// dropOldestGOP drops frames up to the second keyframe held, or all of
// them. b.mu is held.
func (b *replayBuffer) dropOldestGOP() {
	n := len(b.frames)
	for i := 1; i < len(b.frames); i++ {
		if b.isKey(b.frames[i]) {
			n = i
			break
		}
	}
	if !b.full {
		b.p.logger().Warn("worker unreachable or too slow; dropping the oldest frames, a GOP at a time",
			"held_bytes", b.bytes, "held_frames", len(b.frames))
		b.full = true
	}
	for i, f := range b.frames[:n] {
		b.bytes -= len(f.Payload)
		if b.base+uint64(i) >= b.sentHigh {
			b.p.drops.Add(1) // never sent
		}
	}
	b.base += uint64(n)
	b.nextSeq = max(b.nextSeq, b.base)
	b.frames = append(b.frames[:0], b.frames[n:]...)
	clear(b.frames[len(b.frames) : len(b.frames)+n])
}

// next returns the next frame to send and its sequence number; ok is false
// when every frame held was sent.
func (b *replayBuffer) next() (f media.Frame, seq uint64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.nextSeq - b.base
	if i >= uint64(len(b.frames)) {
		if b.full && len(b.frames) > 0 {
			b.p.logger().Info("worker caught up; frames flow again")
			b.full = false
		}
		return media.Frame{}, 0, false
	}
	return b.frames[i], b.nextSeq, true
}

// sent records that the frame seq was written. A keyframe of the leading
// track releases everything before it.
func (b *replayBuffer) sent(seq uint64, f media.Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextSeq = max(b.nextSeq, seq+1)
	b.sentHigh = max(b.sentHigh, seq+1)
	if !b.isKey(f) || seq <= b.base {
		return
	}
	n := int(min(seq-b.base, uint64(len(b.frames))))
	for _, old := range b.frames[:n] {
		b.bytes -= len(old.Payload)
	}
	b.base += uint64(n)
	b.frames = append(b.frames[:0], b.frames[n:]...)
	clear(b.frames[len(b.frames) : len(b.frames)+n])
}

// rewind makes the next connection start at the oldest frame held and
// says how many frames it replays.
func (b *replayBuffer) rewind() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	replay := int(b.nextSeq - b.base)
	b.nextSeq = b.base
	return replay
}
