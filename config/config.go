// Package config reads the settings every vms process shares from the
// environment, with the dev defaults of the embedded stack.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Config is every setting a vms process reads. Zero values are never used:
// Load fills the defaults.
type Config struct {
	HTTPAddr  string // VMS_HTTP_ADDR: REST API
	AgentAddr string // VMS_AGENT_ADDR: agent local API
	MediaAddr string // VMS_MEDIA_ADDR: media worker WebSocket
	DataDir   string // VMS_DATA_DIR

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
		DataDir:           env("VMS_DATA_DIR", ".data"),
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
		DevAPIKey:         os.Getenv("VMS_DEV_API_KEY"),
		TokenSecret:       os.Getenv("VMS_TOKEN_SECRET"),
		WorkerKey:         os.Getenv("VMS_WORKER_KEY"),
		APIURL:            env("VMS_API_URL", "http://127.0.0.1:8080"),
		AgentKey:          os.Getenv("VMS_AGENT_KEY"),
		NVRName:           env("VMS_NVR_NAME", hostname()),
		MediaPublicURL:    os.Getenv("VMS_MEDIA_PUBLIC_URL"),
	}
	c.DatabaseURL = env("DATABASE_URL", filepath.Join(c.DataDir, "vms.db"))
	var err error
	if c.S3PathStyle, err = boolEnv("S3_PATH_STYLE", c.S3Endpoint != ""); err != nil {
		return c, err
	}
	if c.NVRCapacity, err = intEnv("VMS_NVR_CAPACITY", 1000); err != nil {
		return c, err
	}
	durations := []struct {
		name string
		dst  *time.Duration
		def  time.Duration
	}{
		{"VMS_PRESIGN_EXPIRY", &c.PresignExpiry, 15 * time.Minute},
		{"VMS_TOKEN_EXPIRY", &c.TokenExpiry, 60 * time.Second},
		{"VMS_CLIP_MAX_LENGTH", &c.ClipMaxLength, 24 * time.Hour},
		{"VMS_CLIP_GRACE", &c.ClipGrace, 2 * time.Minute},
		{"VMS_SEGMENT_LENGTH", &c.SegmentLength, 30 * time.Second},
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

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "media-worker"
	}
	return h
}
