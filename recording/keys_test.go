package recording_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/recording"
)

func TestParseRecordingKey(t *testing.T) {
	channel, session := uuid.New(), uuid.New()
	start := time.Date(2025, 6, 1, 23, 59, 59, 999_000_000, time.UTC)
	key := recording.RecordingKey(channel, session, start)
	ch, sess, got, err := recording.ParseRecordingKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if ch != channel || sess != session || !got.Equal(start) {
		t.Fatalf("ParseRecordingKey = %s %s %s, want %s %s %s", ch, sess, got, channel, session, start)
	}

	ms := start.UnixMilli()
	for name, bad := range map[string]string{
		"not recordings":    fmt.Sprintf("snapshots/%s/2025/06/01/%d-%s.mp4", channel, ms, session),
		"too few folders":   fmt.Sprintf("recordings/%s/2025/06/%d-%s.mp4", channel, ms, session),
		"too many folders":  fmt.Sprintf("recordings/%s/x/2025/06/01/%d-%s.mp4", channel, ms, session),
		"bad channel":       fmt.Sprintf("recordings/cam-1/2025/06/01/%d-%s.mp4", ms, session),
		"bad session":       fmt.Sprintf("recordings/%s/2025/06/01/%d-session.mp4", channel, ms),
		"no session":        fmt.Sprintf("recordings/%s/2025/06/01/%d.mp4", channel, ms),
		"bad start":         fmt.Sprintf("recordings/%s/2025/06/01/noon-%s.mp4", channel, session),
		"not mp4":           fmt.Sprintf("recordings/%s/2025/06/01/%d-%s.ts", channel, ms, session),
		"date folders lie":  fmt.Sprintf("recordings/%s/2025/06/02/%d-%s.mp4", channel, ms, session),
		"upper-case id":     fmt.Sprintf("recordings/%s/2025/06/01/%d-%s.mp4", "A"+channel.String()[1:], ms, session),
		"id without dashes": fmt.Sprintf("recordings/%x/2025/06/01/%d-%s.mp4", channel[:], ms, session),
		"empty":             "",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, _, err := recording.ParseRecordingKey(bad); err == nil {
				t.Fatalf("ParseRecordingKey(%q) accepted", bad)
			}
		})
	}
}
