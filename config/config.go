// Package config reads the settings every vms process shares from the
// environment, with the dev defaults of the embedded stack. It is the only
// place that reads them: the roles get a Config and pass its values down.
// A default that code elsewhere also falls back to (a zero option, an old
// workflow history) is a named constant beside what it governs, used here.
//
// Only the embedded S3 server's child process (objectstore.ServerConfigFromEnv,
// a handoff from vms dev, not a setting) and test switches read the
// environment elsewhere.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/streamtoken"
	"github.com/opennvr/vms/workflows/contract"
)

// Config is every setting a vms process reads. Zero values are never used:
// Load fills the defaults.
type Config struct {
	HTTPAddr  string // VMS_HTTP_ADDR: REST API
	AgentAddr string // VMS_AGENT_ADDR: agent local API
	MediaAddr string // VMS_MEDIA_ADDR: media worker WebSocket
	DataDir   string // VMS_DATA_DIR, made absolute

	DatabaseURL string // DATABASE_URL: postgres://… or a SQLite path

	S3Endpoint  string // S3_ENDPOINT: empty = embedded server (vms dev) or AWS
	S3Region    string // S3_REGION
	S3Bucket    string // S3_BUCKET
	S3AccessKey string // S3_ACCESS_KEY / AWS_ACCESS_KEY_ID
	S3SecretKey string // S3_SECRET_KEY / AWS_SECRET_ACCESS_KEY
	S3PathStyle bool   // S3_PATH_STYLE

	TemporalAddress   string // TEMPORAL_ADDRESS: empty = dev server (vms dev)
	TemporalNamespace string // TEMPORAL_NAMESPACE
	TemporalTLSCert   string // TEMPORAL_TLS_CERT: client certificate file (mTLS)
	TemporalTLSKey    string // TEMPORAL_TLS_KEY
	TemporalTLSCA     string // TEMPORAL_TLS_CA: server CA file
	// TemporalBin is the Temporal dev server binary vms dev starts when no
	// TEMPORAL_ADDRESS is set (VMS_TEMPORAL_BIN; empty: bin/temporal, beside
	// the vms binary, or on PATH).
	TemporalBin string
	// Where vms dev's own servers listen, on 127.0.0.1 (tests move them off
	// the defaults to run beside a vms dev).
	DevTemporalPort   int    // VMS_TEMPORAL_PORT: Temporal dev server frontend (gRPC)
	DevTemporalUIPort int    // VMS_TEMPORAL_UI_PORT: Temporal Web UI
	DevS3Addr         string // VMS_S3_ADDR: embedded S3 server, host:port

	DevAPIKey string // VMS_DEV_API_KEY: the dev account's key (vms dev)

	// TokenSecret signs stream tokens (VMS_TOKEN_SECRET, ≥ 32 bytes).
	TokenSecret string
	// WorkerKey authenticates media workers on /internal/v1 (VMS_WORKER_KEY).
	WorkerKey string
	// APIURL is where workers and agents reach the API (VMS_API_URL).
	APIURL string
	// AgentKey authenticates a local agent with the API (VMS_AGENT_KEY).
	AgentKey string
	// NVRName is the name a media worker registers under (VMS_NVR_NAME).
	NVRName string
	// MediaPublicURL is the WebSocket URL agents use to reach this media
	// worker (VMS_MEDIA_PUBLIC_URL; default derived from MediaAddr).
	MediaPublicURL string
	// NVRCapacity is how many channels a media worker takes (VMS_NVR_CAPACITY).
	NVRCapacity int

	// S3 ObjectCreated events, for recording segments whose media worker
	// notification was lost (vms workflow-worker); neither set: none.
	SQSQueueURL   string // VMS_SQS_QUEUE_URL: read the events from this SQS queue (AWS)
	SQSRegion     string // VMS_SQS_REGION: empty = from the queue URL, then the AWS configuration
	SQSEndpoint   string // VMS_SQS_ENDPOINT: an SQS-compatible server; empty = AWS
	S3WebhookAddr string // VMS_S3_WEBHOOK_ADDR: listen for events the S3 server posts (MinIO)

	PresignExpiry time.Duration // VMS_PRESIGN_EXPIRY: presigned GET/PUT lifetime
	TokenExpiry   time.Duration // VMS_TOKEN_EXPIRY: stream token lifetime
	ClipMaxLength time.Duration // VMS_CLIP_MAX_LENGTH
	ClipGrace     time.Duration // VMS_CLIP_GRACE: wait past a clip's end for segments
	SegmentLength time.Duration // VMS_SEGMENT_LENGTH: target recording segment length
}

// Load reads the environment.
func Load() (Config, error) {
	c := Config{
		HTTPAddr:          env("VMS_HTTP_ADDR", ":8080"),
		AgentAddr:         env("VMS_AGENT_ADDR", ":8081"),
		MediaAddr:         env("VMS_MEDIA_ADDR", ":8082"),
		S3Endpoint:        os.Getenv("S3_ENDPOINT"),
		S3Region:          env("S3_REGION", "us-east-1"),
		S3Bucket:          env("S3_BUCKET", "vms"),
		S3AccessKey:       env("S3_ACCESS_KEY", os.Getenv("AWS_ACCESS_KEY_ID")),
		S3SecretKey:       env("S3_SECRET_KEY", os.Getenv("AWS_SECRET_ACCESS_KEY")),
		TemporalAddress:   os.Getenv("TEMPORAL_ADDRESS"),
		TemporalNamespace: env("TEMPORAL_NAMESPACE", "default"),
		TemporalTLSCert:   os.Getenv("TEMPORAL_TLS_CERT"),
		TemporalTLSKey:    os.Getenv("TEMPORAL_TLS_KEY"),
		TemporalTLSCA:     os.Getenv("TEMPORAL_TLS_CA"),
		TemporalBin:       os.Getenv("VMS_TEMPORAL_BIN"),
		DevS3Addr:         env("VMS_S3_ADDR", "127.0.0.1:9000"), // the name vms dev hands it to the server under, too
		DevAPIKey:         os.Getenv("VMS_DEV_API_KEY"),
		TokenSecret:       os.Getenv("VMS_TOKEN_SECRET"),
		WorkerKey:         os.Getenv("VMS_WORKER_KEY"),
		APIURL:            env("VMS_API_URL", "http://127.0.0.1:8080"),
		AgentKey:          os.Getenv("VMS_AGENT_KEY"),
		NVRName:           env("VMS_NVR_NAME", hostname()),
		MediaPublicURL:    os.Getenv("VMS_MEDIA_PUBLIC_URL"),
		SQSQueueURL:       os.Getenv("VMS_SQS_QUEUE_URL"),
		SQSRegion:         os.Getenv("VMS_SQS_REGION"),
		SQSEndpoint:       os.Getenv("VMS_SQS_ENDPOINT"),
		S3WebhookAddr:     os.Getenv("VMS_S3_WEBHOOK_ADDR"),
	}
	var err error
	// Absolute, so the default database and everything vms dev keeps there
	// stay put whatever folder a process later works in.
	if c.DataDir, err = filepath.Abs(env("VMS_DATA_DIR", ".data")); err != nil {
		return c, fmt.Errorf("VMS_DATA_DIR: %w", err)
	}
	c.DatabaseURL = env("DATABASE_URL", filepath.Join(c.DataDir, "vms.db"))
	if c.S3PathStyle, err = boolEnv("S3_PATH_STYLE", c.S3Endpoint != ""); err != nil {
		return c, err
	}
	if c.NVRCapacity, err = intEnv("VMS_NVR_CAPACITY", 1000); err != nil {
		return c, err
	}
	if c.DevTemporalPort, err = portEnv("VMS_TEMPORAL_PORT", 7233); err != nil {
		return c, err
	}
	if c.DevTemporalUIPort, err = portEnv("VMS_TEMPORAL_UI_PORT", 8233); err != nil {
		return c, err
	}
	durations := []struct {
		name string
		dst  *time.Duration
		def  time.Duration
	}{
		{"VMS_PRESIGN_EXPIRY", &c.PresignExpiry, contract.DefaultPresignExpiry},
		{"VMS_TOKEN_EXPIRY", &c.TokenExpiry, streamtoken.DefaultExpiry},
		{"VMS_CLIP_MAX_LENGTH", &c.ClipMaxLength, contract.DefaultClipMaxLength},
		{"VMS_CLIP_GRACE", &c.ClipGrace, contract.DefaultClipGrace},
		{"VMS_SEGMENT_LENGTH", &c.SegmentLength, recording.DefaultSegmentLength},
	}
	for _, d := range durations {
		if *d.dst, err = durationEnv(d.name, d.def); err != nil {
			return c, err
		}
	}
	return c, nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func boolEnv(name string, def bool) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

func durationEnv(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: want a positive duration like 30s, got %q", name, v)
	}
	return d, nil
}

func intEnv(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: want a positive integer, got %q", name, v)
	}
	return n, nil
}

func portEnv(name string, def int) (int, error) {
	n, err := intEnv(name, def)
	if err == nil && n > 65535 {
		err = fmt.Errorf("%s: want a port number up to 65535, got %d", name, n)
	}
	return n, err
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "media-worker"
	}
	return h
}
