package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// videoProbe is what ffprobe reports of a file's first video stream.
type videoProbe struct {
	Codec    string
	TimeBase float64 // seconds per tick
	Packets  []packet
}

type packet struct {
	PTS, DTS, Duration int64 // ticks
	Key                bool
}

func probeVideo(tb testing.TB, path string) videoProbe {
	tb.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,time_base:packet=pts,dts,duration,flags", "-of", "json", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ffprobe %s: %v: %s", path, err, stderr.String())
	}
	var raw struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			TimeBase  string `json:"time_base"`
		} `json:"streams"`
		Packets []struct {
			PTS      *int64 `json:"pts"`
			DTS      *int64 `json:"dts"`
			Duration *int64 `json:"duration"`
			Flags    string `json:"flags"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		tb.Fatalf("ffprobe %s: %v", path, err)
	}
	if len(raw.Streams) == 0 {
		tb.Fatalf("ffprobe %s: no video stream", path)
	}
	var num, den float64
	if _, err := fmt.Sscanf(raw.Streams[0].TimeBase, "%g/%g", &num, &den); err != nil || den == 0 {
		tb.Fatalf("ffprobe %s: time base %q", path, raw.Streams[0].TimeBase)
	}
	p := videoProbe{Codec: raw.Streams[0].CodecName, TimeBase: num / den}
	for i, rp := range raw.Packets {
		if rp.PTS == nil || rp.DTS == nil {
			tb.Fatalf("ffprobe %s: packet %d has no timestamps", path, i)
		}
		pk := packet{PTS: *rp.PTS, DTS: *rp.DTS, Key: strings.Contains(rp.Flags, "K")}
		if rp.Duration != nil {
			pk.Duration = *rp.Duration
		}
		p.Packets = append(p.Packets, pk)
	}
	if len(p.Packets) == 0 {
		tb.Fatalf("ffprobe %s: no packets", path)
	}
	return p
}

func (p videoProbe) seconds(ticks int64) time.Duration {
	return time.Duration(float64(ticks) * p.TimeBase * float64(time.Second))
}

// Duration is the presentation span: first presented frame to the end of
// the last one.
func (p videoProbe) Duration() time.Duration {
	first, end := p.Packets[0].PTS, p.Packets[0].PTS+p.Packets[0].Duration
	for _, pk := range p.Packets {
		first = min(first, pk.PTS)
		end = max(end, pk.PTS+pk.Duration)
	}
	return p.seconds(end - first)
}

// DTSSteps are the decode-time differences between consecutive packets.
func (p videoProbe) DTSSteps() []time.Duration {
	steps := make([]time.Duration, 0, len(p.Packets))
	for i := 1; i < len(p.Packets); i++ {
		steps = append(steps, p.seconds(p.Packets[i].DTS-p.Packets[i-1].DTS))
	}
	return steps
}

// distinctSteps lists the different DTS steps in ticks, for messages.
func (p videoProbe) distinctSteps() []int64 {
	var out []int64
	for i := 1; i < len(p.Packets); i++ {
		d := p.Packets[i].DTS - p.Packets[i-1].DTS
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
