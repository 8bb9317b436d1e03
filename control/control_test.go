package control

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := Command{V: Version, ID: "1", Type: TypePTZ, CameraID: "c", Action: ActionLeft, Speed: 0.5}
	tests := []struct {
		name string
		edit func(*Command)
		want string // "" valid
	}{
		{"valid move", func(*Command) {}, ""},
		{"default speed", func(c *Command) { c.Speed = 0 }, ""},
		{"preset", func(c *Command) { c.Action, c.Preset, c.Speed = ActionPreset, 2, 0 }, ""},
		{"snapshot", func(c *Command) {
			*c = Command{V: 1, ID: "1", Type: TypeSnapshot, CameraID: "c", UploadURL: "https://s3/b/k?sig"}
		}, ""},
		{"old version", func(c *Command) { c.V = 0 }, "unsupported protocol version 0"},
		{"no id", func(c *Command) { c.ID = "" }, "no id"},
		{"no camera", func(c *Command) { c.CameraID = "" }, "names no camera"},
		{"no type", func(c *Command) { c.Type = "" }, "no type"},
		{"unknown type", func(c *Command) { c.Type = "reboot" }, `unknown command type "reboot"`},
		{"unknown action", func(c *Command) { c.Action = "spin" }, "action must be one of"},
		{"preset without n", func(c *Command) { c.Action = ActionPreset }, "needs preset"},
		{"preset on a move", func(c *Command) { c.Preset = 1 }, "only for action preset"},
		{"speed too high", func(c *Command) { c.Speed = 1.01 }, "speed"},
		{"snapshot without URL", func(c *Command) { *c = Command{V: 1, ID: "1", Type: TypeSnapshot, CameraID: "c"} }, "upload_url"},
		{"snapshot to a file", func(c *Command) {
			*c = Command{V: 1, ID: "1", Type: TypeSnapshot, CameraID: "c", UploadURL: "file:///etc/passwd"}
		}, "upload_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestWireFormat pins the JSON both ends speak.
func TestWireFormat(t *testing.T) {
	b, _ := json.Marshal(Command{V: 1, ID: "x", Type: TypePTZ, CameraID: "c", Action: ActionStop})
	if string(b) != `{"v":1,"id":"x","type":"ptz","camera_id":"c","action":"stop"}` {
		t.Fatalf("command %s", b)
	}
	b, _ = json.Marshal(Failed("x", errFake("boom")))
	if string(b) != `{"v":1,"id":"x","ok":false,"error":"boom"}` {
		t.Fatalf("error ack %s", b)
	}
	b, _ = json.Marshal(Done("x"))
	if string(b) != `{"v":1,"id":"x","ok":true}` {
		t.Fatalf("ack %s", b)
	}
}

type errFake string

func (e errFake) Error() string { return string(e) }

func TestLogValueHidesSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("sent", "command", Command{V: 1, ID: "x", Type: TypeSnapshot, CameraID: "c", UploadURL: "https://s3/k?X-Amz-Signature=sig",
		Camera: &Camera{SnapshotURL: "http://admin:pw@cam/snap.jpg", Password: "pw"}})
	if out := buf.String(); strings.Contains(out, "pw") || strings.Contains(out, "sig") || !strings.Contains(out, "command.id=x") {
		t.Fatalf("log line %q", out)
	}
}
