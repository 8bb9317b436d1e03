package e2e_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/opennvr/vms/agent"
	"github.com/opennvr/vms/media"
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/streamtoken"
	"github.com/opennvr/vms/workflows/contract"
)

// maxJoin is the most two consecutive recordings of one uninterrupted
// stream may be apart (wall clocks of frames, rounding).
const maxJoin = 250 * time.Millisecond

// rtspCamera starts the demo RTSP camera for the rest of the test.
func rtspCamera(tb testing.TB) camera {
	return camera{Protocol: store.ProtocolRTSP, URL: sources[0].start(tb)}
}

// TestWorkerKilled: the media worker (a child process) dies of SIGKILL
// mid-stream with segments waiting in its spool (S3 is down at that
// moment). A new worker on the same address and spool takes over: it
// salvages the segment the dead one was writing, up to its last keyframe
// on disk; the agent, whose camera session stayed open, reconnects with a
// fresh token and replays from the last keyframe it sent, and the spooled
// and salvaged segments are uploaded and recorded. At most a second of
// media is lost, and no instant is recorded twice.
func TestWorkerKilled(t *testing.T) {
	s3, objects := startS3(t)
	e := newEnv(t, envConfig{Objects: objects})
	cfg := workerConfig{Name: "nvr-1", Addr: freeAddr(t), DataDir: t.TempDir(), APIURL: e.apiURL,
		WorkerKey: e.workerKey, Segment: segmentLength, S3: s3.cfg}
	first := startWorkerProcess(t, cfg)
	ch := e.addChannel(t, rtspCamera(t))
	ag := e.startAgent(t, ch, "high")
	waitFor(t, "two recordings", waitLong, func() bool { return len(e.recordings(t, ch)) >= 2 })

	// With S3 down, finished segments wait in the spool.
	s3.stop()
	waitFor(t, "two segments in the spool", waitLong, func() bool { return len(spooledKeys(t, cfg.spoolDir())) >= 2 })
	// Kill mid-segment, as a crash would on average.
	time.Sleep(segmentLength / 2)
	killedAt := time.Now()
	first.kill()
	spooled := spooledKeys(t, cfg.spoolDir())
	partials, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "writing", "*", ".segment-*.partial"))
	if len(partials) != 1 {
		t.Fatalf("%d partial segment files after the kill, want the one being written", len(partials))
	}
	salvaged := partialKey(t, partials[0])
	t.Logf("killed media worker %d with %d segments in its spool and %s being written",
		first.pid(), len(spooled), salvaged)

	startWorkerProcess(t, cfg)
	restarted := time.Since(killedAt)
	s3.start()

	var recs []recordingItem
	waitFor(t, "the spooled and salvaged segments and two new ones recorded", waitLong, func() bool {
		recs = e.recordings(t, ch)
		after := 0
		for _, r := range recs {
			if r.Start.After(killedAt) {
				after++
			}
		}
		return after >= 2 && recordedAll(recs, append(spooled, salvaged))
	})
	waitFor(t, "an empty spool", waitLong, func() bool { return len(spooledKeys(t, cfg.spoolDir())) == 0 })
	if left, _ := filepath.Glob(filepath.Join(cfg.DataDir, "spool", "writing", "*", ".segment-*")); slices.Contains(left, partials[0]) {
		t.Errorf("the killed worker's partial segment is still there: %q", left)
	}

	if st := ag.List(); len(st) != 1 || st[0].Status != agent.PushLive || st[0].Attempts < 2 {
		t.Errorf("agent streams = %+v, want one live stream after a reconnection", st)
	}
	// The agent kept its camera session and replayed from the last
	// keyframe it sent; the salvage cut the dead worker's segment before its
	// last keyframe on disk: recordings neither overlap nor leave more than
	// a second out.
	// Consecutive segments' times are the frames' wall clocks rounded to
	// milliseconds: a few ms apart either way; a duplicated frame is 40 ms.
	const rounding = 10 * time.Millisecond
	for i := 1; i < len(recs); i++ {
		if recs[i].Start.Before(recs[i-1].End.Add(-rounding)) {
			t.Errorf("recordings overlap: %s..%s and %s..%s", recs[i-1].Start.Format(time.StampMilli),
				recs[i-1].End.Format(time.StampMilli), recs[i].Start.Format(time.StampMilli), recs[i].End.Format(time.StampMilli))
		}
	}
	var lost time.Duration
	for i := 1; i < len(recs); i++ {
		lost += max(0, recs[i].Start.Sub(recs[i-1].End))
	}
	t.Logf("media lost to the kill: %s (the new worker served %s after the kill)",
		lost.Round(10*time.Millisecond), restarted.Round(10*time.Millisecond))
	if lost > time.Second {
		t.Errorf("%s of media lost, want at most 1 s; recordings %+v", lost, recs)
	}
}

// partialKey is the S3 key under which a worker salvages the partial
// segment file at path, from the sidecar the segmenter writes beside it.
func partialKey(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path + ".json")
	var side struct {
		SessionID uuid.UUID `json:"session_id"`
		ChannelID uuid.UUID `json:"channel_id"`
		Start     time.Time `json:"start"`
	}
	if err == nil {
		err = json.Unmarshal(b, &side)
	}
	if err != nil {
		t.Fatalf("sidecar of %s: %v", path, err)
	}
	return recording.RecordingKey(side.ChannelID, side.SessionID, side.Start)
}

// TestS3Outage: S3 stops for a while (20 s; VMS_E2E_S3_OUTAGE=60s for the
// issue's minute) while a stream records. Segments wait in the spool and
// are uploaded when S3 is back: the recordings cover the whole stream with
// no gap, every one of them stored.
func TestS3Outage(t *testing.T) {
	outage := 20 * time.Second
	if v := os.Getenv("VMS_E2E_S3_OUTAGE"); v != "" {
		var err error
		if outage, err = time.ParseDuration(v); err != nil {
			t.Fatalf("VMS_E2E_S3_OUTAGE: %v", err)
		}
	}
	s3, objects := startS3(t)
	e := newEnv(t, envConfig{Objects: objects})
	cfg := startWorker(t, workerConfig{Name: "nvr-1", Addr: "127.0.0.1:0", DataDir: t.TempDir(), APIURL: e.apiURL,
		WorkerKey: e.workerKey, Segment: segmentLength}, objects)
	ch := e.addChannel(t, rtspCamera(t))
	ag := e.startAgent(t, ch, "high")
	waitFor(t, "two recordings", waitLong, func() bool { return len(e.recordings(t, ch)) >= 2 })

	s3.stop()
	time.Sleep(outage)
	waiting := spooledKeys(t, cfg.spoolDir())
	if least := int(outage/segmentLength) - 2; len(waiting) < least {
		t.Errorf("%d segments in the spool after a %s outage, want at least %d", len(waiting), outage, least)
	}
	s3.start()
	back := time.Now()
	t.Logf("S3 back after %s with %d segments in the spool", outage, len(waiting))

	var recs []recordingItem
	waitFor(t, "the spool drained and recording on", waitLong+outage, func() bool {
		recs = e.recordings(t, ch)
		return recordedAll(recs, waiting) && len(recs) > 0 && recs[len(recs)-1].Start.After(back)
	})
	// Stop the stream: the worker flushes the last, partial segment.
	sessionID := ag.List()[0].SessionID
	stoppedAt := time.Now()
	ag.Close()
	// The last segment, cut short by the stop, reaches up to the stop.
	waitFor(t, "the last segment recorded", waitLong, func() bool {
		recs = e.recordings(t, ch)
		return stoppedAt.Sub(recs[len(recs)-1].End) < time.Second
	})
	waitFor(t, "an empty spool", waitLong, func() bool { return len(spooledKeys(t, cfg.spoolDir())) == 0 })

	if gaps := timelineGaps(recs); len(gaps) != 0 {
		t.Errorf("timeline gaps = %v, want none", gaps)
	}
	var recorded time.Duration
	for _, r := range recs {
		recorded += time.Duration(r.DurationMS) * time.Millisecond
		if _, err := objects.Head(context.Background(), objectKey(t, r)); err != nil {
			t.Errorf("recording %s: %v", r.ID, err)
		}
	}
	// Segment reports stop while uploads wait, but the worker's heartbeat
	// (a started report per closed segment) keeps the session live: it ends
	// when the stream stops, never "lost".
	var status string
	waitFor(t, "the session ended", waitLong, func() bool {
		sess, err := e.st.SessionByID(context.Background(), uuid.MustParse(sessionID))
		if err == nil {
			status = sess.Status
		}
		return status == contract.SessionEnded || status == contract.SessionLost
	})
	if status != contract.SessionEnded {
		t.Errorf("stream session %s ended %q, want %q", sessionID, status, contract.SessionEnded)
	}
	streamed := stoppedAt.Sub(recs[0].Start)
	t.Logf("%d recordings, %s recorded of a %s stream (first frame to stop)", len(recs), recorded.Round(time.Millisecond),
		streamed.Round(time.Millisecond))
	// Up to a second may still be in flight at the stop; the last frame's
	// duration and millisecond rounding may put the end a little past it.
	if streamed-recorded > time.Second || recorded-streamed > 100*time.Millisecond {
		t.Errorf("recorded %s of a %s stream", recorded, streamed)
	}
}

// TestTokensRefused: the media worker refuses a forged, a tampered, an
// expired and a replayed stream token in the hello with CloseBadToken,
// and still accepts a good one.
func TestTokensRefused(t *testing.T) {
	e := newEnv(t, envConfig{})
	cfg := startWorker(t, workerConfig{Name: "nvr-1", Addr: "127.0.0.1:0", DataDir: t.TempDir(), APIURL: e.apiURL,
		WorkerKey: e.workerKey, Segment: segmentLength}, e.objects)
	ch := e.addChannel(t, camera{Protocol: store.ProtocolRTSP, URL: "rtsp://127.0.0.1:8554/cam"})
	track, _, err := media.ReadH264File(demoSample, 25)
	if err != nil {
		t.Fatal(err)
	}
	// An API that signs with the same secret, whose tokens live one second.
	shortOpts := e.opts
	shortOpts.TokenExpiry = time.Second
	shortLived := e.serveAPI(t, shortOpts)

	tests := []struct {
		name  string
		token func(t *testing.T) string
		want  int // close code; 0: accepted
	}{
		{"valid", func(t *testing.T) string { return e.streamToken(t, "", ch, "high").Token }, 0},
		{"forged signature", func(t *testing.T) string {
			claims := tokenClaims(t, e.streamToken(t, "", ch, "high").Token)
			claims.SessionID, claims.ExpiresAt = uuid.NewString(), time.Now().Add(time.Hour)
			forger, err := streamtoken.NewSigner(strings.Repeat("not the secret ", 3))
			if err != nil {
				t.Fatal(err)
			}
			return forger.Sign(claims)
		}, media.CloseBadToken},
		{"tampered claims", func(t *testing.T) string {
			tok := e.streamToken(t, "", ch, "high").Token
			claims := tokenClaims(t, tok)
			claims.ExpiresAt = time.Now().Add(24 * time.Hour)
			body, _ := json.Marshal(claims)
			_, sig, _ := strings.Cut(tok, ".")
			return base64.RawURLEncoding.EncodeToString(body) + "." + sig
		}, media.CloseBadToken},
		{"expired", func(t *testing.T) string {
			tv := e.streamToken(t, shortLived, ch, "high")
			time.Sleep(time.Until(tv.ExpiresAt) + 100*time.Millisecond)
			return tv.Token
		}, media.CloseBadToken},
		{"replayed after its stream ended", func(t *testing.T) string {
			tok := e.streamToken(t, "", ch, "high").Token
			conn, code := hello(t, cfg.url(), tok, track)
			if code != 0 {
				t.Fatalf("first use refused with %d", code)
			}
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			conn.Close()
			return tok
		}, media.CloseBadToken},
		{"replayed while its stream is live", func(t *testing.T) string {
			tok := e.streamToken(t, "", ch, "high").Token
			if _, code := hello(t, cfg.url(), tok, track); code != 0 {
				t.Fatalf("first use refused with %d", code)
			}
			return tok
		}, media.CloseBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, code := hello(t, cfg.url(), tt.token(t), track)
			if code != tt.want {
				t.Errorf("hello answered with close code %d, want %d", code, tt.want)
			}
		})
	}
}

// hello opens a stream with token as an agent would and returns the
// connection (closed when the test ends) and, if the worker refused, the
// close code it sent (0 when it welcomed the stream).
func hello(t *testing.T, workerURL, token string, track media.Track) (*websocket.Conn, int) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(workerURL, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", workerURL, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	msg, _ := json.Marshal(media.Hello{Version: media.ProtocolVersion, Token: token, Tracks: []media.Track{track}})
	if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		t.Fatalf("send hello: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(media.KeepaliveTimeout))
	typ, answer, err := conn.ReadMessage()
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return conn, ce.Code
	case err != nil:
		t.Fatalf("await welcome: %v", err)
	case typ != websocket.TextMessage:
		t.Fatalf("hello answered with message type %d", typ)
	}
	var w media.Welcome
	if err := json.Unmarshal(answer, &w); err != nil || w.SessionID == "" {
		t.Fatalf("welcome %q: %v", answer, err)
	}
	return conn, 0
}

// tokenClaims reads a token's claims without checking it.
func tokenClaims(t *testing.T, token string) streamtoken.Claims {
	t.Helper()
	payload, _, _ := strings.Cut(token, ".")
	body, err := base64.RawURLEncoding.DecodeString(payload)
	var c streamtoken.Claims
	if err == nil {
		err = json.Unmarshal(body, &c)
	}
	if err != nil {
		t.Fatalf("token claims: %v", err)
	}
	return c
}

// spooledKeys lists the S3 keys of the segments waiting in a spool folder.
func spooledKeys(tb testing.TB, dir string) []string {
	tb.Helper()
	metas, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var keys []string
	for _, m := range metas {
		b, err := os.ReadFile(m)
		if errors.Is(err, os.ErrNotExist) {
			continue // delivered meanwhile
		}
		var sp struct {
			Report struct {
				Key string `json:"key"`
			} `json:"report"`
		}
		if err != nil || json.Unmarshal(b, &sp) != nil || sp.Report.Key == "" {
			tb.Fatalf("spool metadata %s: %v %s", m, err, b)
		}
		keys = append(keys, sp.Report.Key)
	}
	return keys
}

// recordedAll tells whether a recording exists for every key.
func recordedAll(recs []recordingItem, keys []string) bool {
	for _, k := range keys {
		found := false
		for _, r := range recs {
			if r.hasKey(k) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// objectKey is the S3 key in a recording's presigned URL.
func objectKey(t *testing.T, r recordingItem) string {
	t.Helper()
	i := strings.Index(r.URL, "/recordings/")
	if i < 0 {
		t.Fatalf("recording URL %s names no recordings/ key", r.URL)
	}
	key, _, _ := strings.Cut(r.URL[i+1:], "?")
	return key
}

type gap struct{ from, to time.Time }

func (g gap) String() string {
	return g.from.Format(time.StampMilli) + "→" + g.to.Format(time.StampMilli) + " (" + g.to.Sub(g.from).String() + ")"
}

// timelineGaps lists the holes between consecutive recordings (sorted by
// start) wider than maxJoin.
func timelineGaps(recs []recordingItem) []gap {
	var out []gap
	for i := 1; i < len(recs); i++ {
		if recs[i].Start.Sub(recs[i-1].End) > maxJoin {
			out = append(out, gap{recs[i-1].End, recs[i].Start})
		}
	}
	return out
}
