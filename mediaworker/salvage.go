package mediaworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opennvr/vms/media"
)

// partialPattern names a segment file being written (os.CreateTemp).
const partialPattern = ".segment-*.partial"

// partialInfo is the sidecar of a segment file being written: what a
// worker starting after a crash needs to report the file it salvages.
type partialInfo struct {
	SessionID string    `json:"session_id"`
	ChannelID string    `json:"channel_id"`
	Start     time.Time `json:"start"` // wall clock of the first frame
}

// sidecarPath is where the sidecar of the partial file at path lives.
func sidecarPath(path string) string { return path + ".json" }

// write stores the sidecar of the partial file at path. It is written
// before the file's first fragment, so a partial worth salvaging always
// has one.
func (p partialInfo) write(path string) error {
	b, _ := json.Marshal(p)
	if err := os.WriteFile(sidecarPath(path), b, 0o644); err != nil {
		return fmt.Errorf("segment sidecar: %w", err)
	}
	return nil
}

// removePartial deletes a partial file and its sidecar.
func removePartial(path string) {
	os.Remove(path)
	os.Remove(sidecarPath(path))
}

// listPartials finds the segment files an earlier process was writing
// when it died, and removes sidecars left without their file.
func (s *Spool) listPartials() []string {
	if s.WorkDir == "" {
		return nil
	}
	var partials []string
	err := filepath.WalkDir(s.WorkDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		switch {
		case strings.HasPrefix(name, ".segment-") && strings.HasSuffix(name, ".partial"):
			partials = append(partials, path)
		case strings.HasSuffix(name, ".partial.json"):
			if _, err := os.Stat(strings.TrimSuffix(path, ".json")); errors.Is(err, os.ErrNotExist) {
				os.Remove(path)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.Logger.Error("spool: cannot list partial segments", "dir", s.WorkDir, "err", err)
	}
	return partials
}

// salvagePartials spools what can be saved of the partial files an
// earlier process left, oldest session folder first.
func (s *Spool) salvagePartials(ctx context.Context) {
	partials := s.partials
	s.partials = nil
	for _, path := range partials {
		sp, ok := s.salvage(path)
		if !ok {
			s.pending.Done()
			continue
		}
		select {
		case s.queue <- sp:
		case <-ctx.Done():
			return
		}
	}
}

// salvage cuts the partial file at path before its last whole fragment
// that starts with a keyframe, and moves it into the spool as a short
// segment; a file with nothing left is removed. ok is false when nothing
// was spooled. The agent resumes the stream on a new connection from the
// last keyframe it sent, at or after that one: the cut leaves the rest to
// the resumed session, so no instant is recorded twice (docs/protocol.md,
// "Resuming a stream").
func (s *Spool) salvage(path string) (sp spooled, ok bool) {
	log := s.Logger.With("file", path)
	if dir := filepath.Dir(path); dir != filepath.Clean(s.WorkDir) {
		defer os.Remove(dir) // the session folder, once empty
	}
	b, err := os.ReadFile(sidecarPath(path))
	var info partialInfo
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	if err != nil {
		// Without its stream's ids the file cannot be reported; it is
		// either empty (the sidecar comes before any media) or from a
		// worker older than sidecars.
		log.Error("spool: partial segment without a readable sidecar, removed", "err", err)
		removePartial(path)
		return spooled{}, false
	}
	log = log.With("session", info.SessionID, "channel", info.ChannelID)
	seg, err := cutPartial(path, info.Start)
	if err != nil {
		log.Error("spool: cannot salvage partial segment, left in place", "err", err)
		return spooled{}, false
	}
	if seg.Duration <= 0 {
		log.Info("spool: partial segment holds no whole fragment, removed")
		removePartial(path)
		return spooled{}, false
	}
	r, err := segmentReport(seg, info.SessionID, info.ChannelID)
	if err == nil {
		sp, err = s.store(path, info.SessionID, info.ChannelID, r)
	}
	if err != nil {
		log.Error("spool: cannot spool salvaged segment, left in place", "err", err)
		return spooled{}, false
	}
	os.Remove(sidecarPath(path))
	log.Warn("spool: salvaged the segment a crashed worker was writing", "key", r.Key,
		"start", r.Start, "duration", seg.Duration)
	return sp, true
}

// cutPartial truncates the partial file at path before its last whole
// fragment starting with a keyframe and describes what is left; Duration
// is 0 when nothing is.
func cutPartial(path string, start time.Time) (Segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Segment{}, err
	}
	defer f.Close()
	info, complete, err := media.ProbePartialSegmentToKeyframe(f)
	if err != nil || complete == 0 {
		return Segment{}, err
	}
	// A torn fragment would make the whole file unreadable to players.
	if err := f.Truncate(complete); err != nil {
		return Segment{}, fmt.Errorf("cut partial segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Segment{}, fmt.Errorf("cut partial segment: %w", err)
	}
	return Segment{Path: path, Start: start, End: start.Add(info.Duration), Duration: info.Duration,
		Size: complete, Codec: info.Codec}, nil
}
