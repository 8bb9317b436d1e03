package recording

import (
	"strconv"
	"time"
)

// DefaultSegmentLength is the target length of a recording segment when
// nothing configures another.
const DefaultSegmentLength = 30 * time.Second

// A media worker registers its NVR again every NVRHeartbeat while it runs;
// the control plane takes an NVR it has not heard from in NVRStaleAfter for
// dead and moves its channels to other NVRs.
const (
	NVRHeartbeat  = 10 * time.Second
	NVRStaleAfter = 3 * NVRHeartbeat
)

// Grant is what the control plane answers a media worker that presents a
// valid stream token: the stream it may accept and how to cut it.
type Grant struct {
	SessionID      string `json:"session_id"`
	ChannelID      string `json:"channel_id"`
	Quality        string `json:"quality"`
	SegmentSeconds int    `json:"segment_seconds"`
}

// SegmentReport tells the control plane a segment is stored in S3. The
// media worker posts it to the API; the API signals it to the stream's
// workflow.
type SegmentReport struct {
	Key        string    `json:"key"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	DurationMS int64     `json:"duration_ms"`
	Size       int64     `json:"size"`
	Codec      string    `json:"codec"`
}

// A segment object carries its report as S3 user metadata (x-amz-meta-*),
// so that whoever finds the object without its report — the control
// plane's reconciler of S3 events, when the worker's notification was lost
// — records exactly what the notification would have. The key already
// names the channel, the session and the start.
const (
	MetaSegmentStart      = "vms-segment-start" // RFC 3339 with nanoseconds
	MetaSegmentEnd        = "vms-segment-end"   // RFC 3339 with nanoseconds
	MetaSegmentDurationMS = "vms-segment-duration-ms"
	MetaSegmentCodec      = "vms-segment-codec"
)

// Metadata returns the report as S3 user metadata.
func (r SegmentReport) Metadata() map[string]string {
	return map[string]string{
		MetaSegmentStart:      r.Start.UTC().Format(time.RFC3339Nano),
		MetaSegmentEnd:        r.End.UTC().Format(time.RFC3339Nano),
		MetaSegmentDurationMS: strconv.FormatInt(r.DurationMS, 10),
		MetaSegmentCodec:      r.Codec,
	}
}

// SegmentReportFromMetadata rebuilds the report of the object at key from
// its user metadata (keys as Metadata wrote them; S3 returns them lower
// case) and its size. ok is false when any field is missing or garbled, as
// on an object uploaded before segments carried metadata.
func SegmentReportFromMetadata(key string, size int64, md map[string]string) (r SegmentReport, ok bool) {
	start, err1 := time.Parse(time.RFC3339Nano, md[MetaSegmentStart])
	end, err2 := time.Parse(time.RFC3339Nano, md[MetaSegmentEnd])
	dur, err3 := strconv.ParseInt(md[MetaSegmentDurationMS], 10, 64)
	codec := md[MetaSegmentCodec]
	if err1 != nil || err2 != nil || err3 != nil || codec == "" || !start.Before(end) || dur <= 0 {
		return SegmentReport{}, false
	}
	return SegmentReport{Key: key, Start: start, End: end, DurationMS: dur, Size: size, Codec: codec}, true
}
