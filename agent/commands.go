package agent

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/opennvr/vms/control"
)

// DefaultMaxSnapshotBytes bounds a captured snapshot (the API refuses
// larger ones too).
const DefaultMaxSnapshotBytes = 10 << 20

// Executor carries out control commands on the LAN: PTZ through ONVIF,
// snapshot capture over HTTP, and channels' record streams (see Manager.Record).
// It is the ControlClient's Commander.
//
// Errors it returns go back to the API as the ack's reason (a failed
// snapshot shows it): they name what failed and never hold credentials or
// presigned URLs.
type Executor struct {
	// HTTP reaches cameras and the upload URL; nil means
	// http.DefaultClient. Every request carries the command's context.
	HTTP *http.Client
	// MaxSnapshotBytes bounds a snapshot (default DefaultMaxSnapshotBytes).
	MaxSnapshotBytes int64
	// Streams runs record streams; nil refuses record commands.
	Streams *Manager
}

// Execute runs one command.
func (e *Executor) Execute(ctx context.Context, cmd control.Command) (control.Ack, error) {
	if cmd.Type == control.TypeStopRecord {
		if e.Streams == nil {
			return control.Ack{}, nil // nothing records here
		}
		return control.Ack{}, e.Streams.StopRecord(ctx, cmd.ChannelID)
	}
	if cmd.Camera == nil {
		return control.Ack{}, errors.New("the command carries no camera address")
	}
	switch cmd.Type {
	case control.TypePTZ:
		return control.Ack{}, e.PTZ(ctx, *cmd.Camera, cmd.Action, cmd.Preset, cmd.Speed)
	case control.TypeSnapshot:
		return control.Ack{}, e.CaptureSnapshot(ctx, cmd.Camera.SnapshotURL, cmd.UploadURL)
	case control.TypeRecord:
		started, err := e.record(ctx, cmd)
		return control.Ack{Started: started}, err
	default:
		return control.Ack{}, fmt.Errorf("unknown command type %q", cmd.Type)
	}
}

func (e *Executor) client() *http.Client {
	if e.HTTP != nil {
		return e.HTTP
	}
	return http.DefaultClient
}

// CaptureSnapshot GETs the camera's still image (basic or digest auth with
// the URL's credentials) and PUTs it to uploadURL, a presigned S3 URL.
func (e *Executor) CaptureSnapshot(ctx context.Context, cameraURL, uploadURL string) error {
	image, contentType, err := e.fetchSnapshot(ctx, cameraURL)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, uploadURL, bytes.NewReader(image))
	if err != nil {
		return errors.New("upload snapshot: invalid upload URL")
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := e.client().Do(req)
	if err != nil {
		return fmt.Errorf("upload snapshot: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upload snapshot: storage answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// fetchSnapshot returns the camera's current image and its content type.
func (e *Executor) fetchSnapshot(ctx context.Context, raw string) ([]byte, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", errors.New("camera snapshot: the snapshot URL is invalid")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, "", fmt.Errorf("camera snapshot: %s snapshot URLs are not supported (http or https only)", u.Scheme)
	}
	// Credentials go in a header: the URL in errors (the ack's reason) has
	// none left to show.
	user := u.User
	u.User = nil
	get := func(auth string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "image/jpeg, image/png, image/*")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		} else if user != nil {
			pass, _ := user.Password()
			req.SetBasicAuth(user.Username(), pass)
		}
		return e.client().Do(req)
	}
	resp, err := get("")
	if err != nil {
		return nil, "", fmt.Errorf("camera unreachable: %w", err)
	}
	if resp.StatusCode == http.StatusUnauthorized && user != nil {
		// Many cameras answer basic auth with a digest challenge.
		pass, _ := user.Password()
		if auth, ok := digestAuthorization(resp.Header.Get("WWW-Authenticate"), http.MethodGet, u.RequestURI(), user.Username(), pass); ok {
			resp.Body.Close()
			if resp, err = get(auth); err != nil {
				return nil, "", fmt.Errorf("camera unreachable: %w", err)
			}
		}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("camera snapshot: the camera answered HTTP %d", resp.StatusCode)
	}
	limit := e.MaxSnapshotBytes
	if limit <= 0 {
		limit = DefaultMaxSnapshotBytes
	}
	image, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		return nil, "", fmt.Errorf("camera snapshot: reading the image: %w", withoutURL(err))
	case int64(len(image)) > limit:
		return nil, "", fmt.Errorf("camera snapshot: the image is larger than %d bytes", limit)
	case len(image) == 0:
		return nil, "", errors.New("camera snapshot: the camera sent an empty image")
	}
	contentType := "application/octet-stream"
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && strings.HasPrefix(mt, "image/") {
		contentType = mt
	}
	return image, contentType, nil
}

// withoutURL drops the URL a *url.Error names (a presigned URL carries its
// signature) and keeps the cause.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// digestAuthorization answers an HTTP Digest challenge (RFC 7616, MD5,
// qop auth or none), reporting false for anything else.
func digestAuthorization(challenge, method, uri, username, password string) (string, bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(challenge), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return "", false
	}
	p := parseAuthParams(rest)
	if alg := p["algorithm"]; alg != "" && !strings.EqualFold(alg, "MD5") {
		return "", false
	}
	realm, nonce := p["realm"], p["nonce"]
	if nonce == "" {
		return "", false
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1, ha2 := h(username+":"+realm+":"+password), h(method+":"+uri)
	header := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s"`, username, realm, nonce, uri)
	qopAuth := false
	for _, q := range strings.Split(p["qop"], ",") {
		qopAuth = qopAuth || strings.TrimSpace(q) == "auth"
	}
	if qopAuth {
		c := make([]byte, 8)
		_, _ = rand.Read(c)
		cnonce, nc := hex.EncodeToString(c), "00000001"
		header += fmt.Sprintf(`, qop=auth, nc=%s, cnonce="%s", response="%s"`, nc, cnonce, h(ha1+":"+nonce+":"+nc+":"+cnonce+":auth:"+ha2))
	} else {
		header += fmt.Sprintf(`, response="%s"`, h(ha1+":"+nonce+":"+ha2))
	}
	if opaque, ok := p["opaque"]; ok {
		header += fmt.Sprintf(`, opaque="%s"`, opaque)
	}
	return header + ", algorithm=MD5", true
}

// parseAuthParams splits `a="x, y", b=z` into its parameters.
func parseAuthParams(s string) map[string]string {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(strings.TrimSpace(s), ",") {
		s = strings.TrimSpace(s)
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		rest = strings.TrimSpace(rest)
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				break
			}
			val, s = rest[1:1+end], rest[2+end:]
		} else {
			val, s, _ = strings.Cut(rest, ",")
			val = strings.TrimSpace(val)
		}
		out[key] = val
	}
	return out
}
