package config

import (
	"path/filepath"
	"testing"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/streamtoken"
	"github.com/opennvr/vms/workflows/contract"
)

// The defaults config gives are the constants the code that owns each
// concept falls back to, so the two cannot disagree.
func TestLoadDefaults(t *testing.T) {
	for _, name := range []string{"VMS_DATA_DIR", "DATABASE_URL", "VMS_PRESIGN_EXPIRY", "VMS_TOKEN_EXPIRY",
		"VMS_CLIP_MAX_LENGTH", "VMS_CLIP_GRACE", "VMS_SEGMENT_LENGTH"} {
		t.Setenv(name, "")
	}
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.DataDir) || filepath.Base(c.DataDir) != ".data" {
		t.Errorf("DataDir = %q, want an absolute .data", c.DataDir)
	}
	if want := filepath.Join(c.DataDir, "vms.db"); c.DatabaseURL != want {
		t.Errorf("DatabaseURL = %q, want %q", c.DatabaseURL, want)
	}
	for _, d := range []struct {
		name      string
		got, want any
	}{
		{"PresignExpiry", c.PresignExpiry, contract.DefaultPresignExpiry},
		{"TokenExpiry", c.TokenExpiry, streamtoken.DefaultExpiry},
		{"ClipMaxLength", c.ClipMaxLength, contract.DefaultClipMaxLength},
		{"ClipGrace", c.ClipGrace, contract.DefaultClipGrace},
		{"SegmentLength", c.SegmentLength, recording.DefaultSegmentLength},
	} {
		if d.got != d.want {
			t.Errorf("%s = %v, want %v", d.name, d.got, d.want)
		}
	}
}

func TestLoadS3EventSettings(t *testing.T) {
	t.Setenv("VMS_SQS_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q")
	t.Setenv("VMS_SQS_REGION", "eu-west-1")
	t.Setenv("VMS_SQS_ENDPOINT", "http://127.0.0.1:9324")
	t.Setenv("VMS_S3_WEBHOOK_ADDR", "127.0.0.1:9001")
	t.Setenv("VMS_TEMPORAL_BIN", "/opt/temporal")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.SQSQueueURL, c.SQSRegion, c.SQSEndpoint, c.S3WebhookAddr, c.TemporalBin}
	want := []string{"https://sqs.eu-west-1.amazonaws.com/1/q", "eu-west-1", "http://127.0.0.1:9324", "127.0.0.1:9001", "/opt/temporal"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("setting %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// vms dev's own servers keep their well-known ports unless moved, and a port
// that cannot be one is refused rather than passed to a server.
func TestLoadDevPorts(t *testing.T) {
	for _, tc := range []struct {
		temporal, ui, s3 string
		want             []any
		wantErr          bool
	}{
		{want: []any{7233, 8233, "127.0.0.1:9000"}},
		{temporal: "17233", ui: "18233", s3: "127.0.0.1:19000", want: []any{17233, 18233, "127.0.0.1:19000"}},
		{temporal: "70000", wantErr: true},
		{ui: "0", wantErr: true},
		{temporal: "http", wantErr: true},
	} {
		t.Setenv("VMS_TEMPORAL_PORT", tc.temporal)
		t.Setenv("VMS_TEMPORAL_UI_PORT", tc.ui)
		t.Setenv("VMS_S3_ADDR", tc.s3)
		c, err := Load()
		if tc.wantErr {
			if err == nil {
				t.Errorf("ports %q %q: no error", tc.temporal, tc.ui)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got := []any{c.DevTemporalPort, c.DevTemporalUIPort, c.DevS3Addr}
		for i := range tc.want {
			if got[i] != tc.want[i] {
				t.Errorf("setting %d = %v, want %v", i, got[i], tc.want[i])
			}
		}
	}
}
