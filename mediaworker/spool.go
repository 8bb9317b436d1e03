package mediaworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/apiclient"
	"github.com/opennvr/vms/recording"
)

// Uploader stores a spooled file in S3, with metadata as the object's
// user metadata.
type Uploader interface {
	PutFile(ctx context.Context, key, path, contentType string, metadata map[string]string) error
}

// spooled is a segment waiting in the spool: the .mp4 beside a .json of
// this. The .json is written last, so its presence means the pair is whole.
type spooled struct {
	SessionID string                  `json:"session_id"`
	ChannelID string                  `json:"channel_id"`
	Report    recording.SegmentReport `json:"report"`
	// Uploaded is set once the object is in S3, so a restart only re-notifies.
	Uploaded bool `json:"uploaded"`

	base string // path without extension
}

// Spool keeps finished segments on local disk until they are uploaded and
// reported, retrying both forever with capped backoff: a segment leaves the
// spool only once the control plane has recorded it. Segments spooled
// before a restart are picked up by the next Run, and so is what a worker
// that died was still writing: Run salvages each partial segment file in
// WorkDir up to its last whole fragment.
type Spool struct {
	// Dir holds the segments waiting for upload.
	Dir string
	// WorkDir holds the segments streams are writing, a folder per session
	// (Server writes there).
	WorkDir  string
	Uploader Uploader
	Control  ControlPlane
	Logger   *slog.Logger
	// Workers is how many segments upload at once (default 4).
	Workers int
	// MinBackoff and MaxBackoff bound the retry delay (defaults 500 ms, 30 s).
	MinBackoff, MaxBackoff time.Duration

	once    sync.Once
	queue   chan spooled
	pending sync.WaitGroup
	// leftovers is what an earlier process left in Dir, read before this
	// process can Add anything so that no segment is queued twice.
	leftovers []spooled
	// partials are the files an earlier process was writing in WorkDir,
	// listed before this process can write any (see sessionDir).
	partials []string
}

func (s *Spool) init() {
	s.once.Do(func() {
		if s.Workers <= 0 {
			s.Workers = 4
		}
		if s.MinBackoff <= 0 {
			s.MinBackoff = 500 * time.Millisecond
		}
		if s.MaxBackoff <= 0 {
			s.MaxBackoff = 30 * time.Second
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		// The queue only carries paths; its bound is generous because every
		// entry is already safe on disk.
		s.queue = make(chan spooled, 4096)
		s.leftovers = s.scan()
		s.partials = s.listPartials()
		s.pending.Add(len(s.leftovers) + len(s.partials))
	})
}

// sessionDir is the folder where the session's stream writes its
// segments. The spool has listed what earlier processes left in WorkDir
// when it returns, so it never salvages a file this process is writing.
func (s *Spool) sessionDir(sessionID string) string {
	s.init()
	return filepath.Join(s.WorkDir, sessionID)
}

// Add moves a finished segment file into the spool and queues it.
func (s *Spool) Add(segPath, sessionID, channelID string, r recording.SegmentReport) error {
	s.init()
	sp, err := s.store(segPath, sessionID, channelID, r)
	if err != nil {
		return err
	}
	s.pending.Add(1)
	s.queue <- sp
	return nil
}

// store moves a segment file into Dir beside its metadata.
func (s *Spool) store(segPath, sessionID, channelID string, r recording.SegmentReport) (spooled, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return spooled{}, err
	}
	base := filepath.Join(s.Dir, strings.NewReplacer("/", "_").Replace(strings.TrimSuffix(r.Key, ".mp4")))
	if err := os.Rename(segPath, base+".mp4"); err != nil {
		return spooled{}, fmt.Errorf("spool segment: %w", err)
	}
	sp := spooled{SessionID: sessionID, ChannelID: channelID, Report: r, base: base}
	if err := sp.save(); err != nil {
		return spooled{}, err
	}
	return sp, nil
}

// segmentReport is the report of a segment of the session.
func segmentReport(s Segment, sessionID, channelID string) (recording.SegmentReport, error) {
	session, err := uuid.Parse(sessionID)
	if err != nil {
		return recording.SegmentReport{}, fmt.Errorf("session id: %w", err)
	}
	channel, err := uuid.Parse(channelID)
	if err != nil {
		return recording.SegmentReport{}, fmt.Errorf("channel id: %w", err)
	}
	return recording.SegmentReport{
		Key: recording.RecordingKey(channel, session, s.Start), Start: s.Start, End: s.End,
		DurationMS: s.Duration.Milliseconds(), Size: s.Size, Codec: s.Codec,
	}, nil
}

func (sp *spooled) save() error {
	b, _ := json.Marshal(sp)
	tmp := sp.base + ".json.tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("spool metadata: %w", err)
	}
	return os.Rename(tmp, sp.base+".json")
}

// scan reads what an earlier process left in the spool, oldest first.
func (s *Spool) scan() []spooled {
	metas, _ := filepath.Glob(filepath.Join(s.Dir, "*.json")) // only fails on a bad pattern
	sort.Strings(metas)
	var out []spooled
	for _, m := range metas {
		b, err := os.ReadFile(m)
		if err != nil {
			s.Logger.Error("spool: unreadable metadata, left in place", "file", m, "err", err)
			continue
		}
		var sp spooled
		if err := json.Unmarshal(b, &sp); err != nil {
			s.Logger.Error("spool: unreadable metadata, left in place", "file", m, "err", err)
			continue
		}
		sp.base = strings.TrimSuffix(m, ".json")
		out = append(out, sp)
	}
	return out
}

// recover queues what an earlier process left in the spool.
func (s *Spool) recover(ctx context.Context) {
	leftovers := s.leftovers
	s.leftovers = nil
	for _, sp := range leftovers {
		s.Logger.Info("spool: resuming segment from an earlier run", "key", sp.Report.Key, "uploaded", sp.Uploaded)
		select {
		case s.queue <- sp:
		case <-ctx.Done():
			return
		}
	}
}

// Run uploads and reports queued segments until ctx ends.
func (s *Spool) Run(ctx context.Context) error {
	s.init()
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range s.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case sp := <-s.queue:
					s.deliver(ctx, sp)
					s.pending.Done()
				}
			}
		}()
	}
	s.recover(ctx)
	s.salvagePartials(ctx)
	wg.Wait()
	return ctx.Err()
}

// Drain waits until every queued segment is delivered, or ctx ends.
func (s *Spool) Drain(ctx context.Context) error {
	s.init()
	done := make(chan struct{})
	go func() { s.pending.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliver uploads then reports one segment, retrying until it succeeds or
// ctx ends (the files stay for the next run).
func (s *Spool) deliver(ctx context.Context, sp spooled) {
	log := s.Logger.With("key", sp.Report.Key, "session", sp.SessionID)
	backoff := s.MinBackoff
	retry := func(what string, err error) bool {
		log.Warn("spool: "+what+" failed, retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.MaxBackoff)
		return true
	}
	for !sp.Uploaded {
		err := s.Uploader.PutFile(ctx, sp.Report.Key, sp.base+".mp4", "video/mp4", sp.Report.Metadata())
		if err == nil {
			sp.Uploaded = true
			if err := sp.save(); err != nil {
				log.Warn("spool: cannot mark uploaded", "err", err)
			}
			break
		}
		if _, serr := os.Stat(sp.base + ".mp4"); errors.Is(serr, os.ErrNotExist) {
			// Retrying cannot bring the file back; do not hold a worker forever.
			log.Error("spool: segment file is gone, dropping its metadata", "err", err)
			os.Remove(sp.base + ".json")
			return
		}
		if !retry("upload", err) {
			return
		}
	}
	for {
		err := s.Control.Segment(ctx, sp.SessionID, sp.Report)
		if err == nil {
			break
		}
		if apiclient.IsPermanent(err) {
			// The control plane will never take it (e.g. the channel was
			// deleted); the object stays in S3 for the retention sweep.
			log.Error("spool: segment refused by the control plane, dropping the local copy", "err", err)
			break
		}
		if !retry("report", err) {
			return
		}
	}
	for _, ext := range []string{".mp4", ".json"} {
		if err := os.Remove(sp.base + ext); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("spool: cannot remove delivered file", "err", err)
		}
	}
	log.Debug("spool: segment delivered")
}
