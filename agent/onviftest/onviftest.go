// Package onviftest is a fake ONVIF camera for tests: an HTTP server that
// speaks enough SOAP for the agent's PTZ (GetCapabilities on the device
// service, GetProfiles on the media service, ContinuousMove, Stop,
// GotoHomePosition, GetPresets and GotoPreset on the PTZ service), checks
// each request's service path, namespace and WS-Security credentials, and
// records what it was asked.
//
//	cam := onviftest.Start(t, onviftest.Options{Username: "admin", Password: "pw"})
//	… drive PTZ at cam.Addr() …
//	calls := cam.Calls() // e.g. ContinuousMove on profile "ptz-profile" with x=0, y=0.5
package onviftest

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Namespaces of the ONVIF services and the SOAP envelope.
const (
	nsSOAP   = "http://www.w3.org/2003/05/soap-envelope"
	nsDevice = "http://www.onvif.org/ver10/device/wsdl"
	nsMedia  = "http://www.onvif.org/ver10/media/wsdl"
	nsPTZ    = "http://www.onvif.org/ver20/ptz/wsdl"
	nsSchema = "http://www.onvif.org/ver10/schema"
)

// Service paths the fake announces in GetCapabilities.
const (
	DevicePath = "/onvif/device_service"
	MediaPath  = "/onvif/media_service"
	PTZPath    = "/onvif/ptz_service"
)

// ProfileToken is the token of the fake's PTZ media profile (a first
// profile without PTZ comes before it, so a client must pick the right one).
const ProfileToken = "ptz-profile"

// Options configure the fake camera.
type Options struct {
	// Username and Password, if set, are required as a WS-Security
	// UsernameToken (password digest) on every request.
	Username, Password string
	// Presets are the preset tokens GetPresets lists, in order (default
	// "preset-a", "preset-b", "preset-c").
	Presets []string
}

// Call is one operation the fake received.
type Call struct {
	Operation    string // e.g. "ContinuousMove"
	ProfileToken string
	// ContinuousMove velocity: nil when the element or attribute is absent.
	PanX, PanY, Zoom *float64
	PresetToken      string
	// Stop: the PanTilt and Zoom flags as sent ("true", "false" or "").
	StopPanTilt, StopZoom string
}

// Camera is a running fake.
type Camera struct {
	srv  *httptest.Server
	opts Options

	mu    sync.Mutex
	calls []Call
}

// Start runs a fake camera on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts Options) *Camera {
	t.Helper()
	if opts.Presets == nil {
		opts.Presets = []string{"preset-a", "preset-b", "preset-c"}
	}
	c := &Camera{opts: opts}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

// Addr is the camera's host:port (its device service is
// http://<Addr>/onvif/device_service).
func (c *Camera) Addr() string { return strings.TrimPrefix(c.srv.URL, "http://") }

// Calls returns the PTZ operations received so far (GetCapabilities and
// GetProfiles left out: every command starts with them).
func (c *Camera) Calls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Call
	for _, call := range c.calls {
		if call.Operation != "GetCapabilities" && call.Operation != "GetProfiles" {
			out = append(out, call)
		}
	}
	return out
}

// AllCalls returns every operation received so far.
func (c *Camera) AllCalls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Call(nil), c.calls...)
}

// node is any XML element.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n *node) child(local string) *node {
	for i := range n.Children {
		if n.Children[i].XMLName.Local == local {
			return &n.Children[i]
		}
	}
	return nil
}

func (n *node) path(locals ...string) *node {
	cur := n
	for _, l := range locals {
		if cur = cur.child(l); cur == nil {
			return nil
		}
	}
	return cur
}

func (n *node) attr(local string) *float64 {
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			if f, err := strconv.ParseFloat(a.Value, 64); err == nil {
				return &f
			}
		}
	}
	return nil
}

func (n *node) text() string {
	if n == nil {
		return ""
	}
	return strings.TrimSpace(n.Text)
}

// operations: service path and namespace of each operation.
var operations = map[string]struct{ path, ns string }{
	"GetCapabilities":  {DevicePath, nsDevice},
	"GetProfiles":      {MediaPath, nsMedia},
	"ContinuousMove":   {PTZPath, nsPTZ},
	"Stop":             {PTZPath, nsPTZ},
	"GotoHomePosition": {PTZPath, nsPTZ},
	"GetPresets":       {PTZPath, nsPTZ},
	"GotoPreset":       {PTZPath, nsPTZ},
}

func (c *Camera) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var env node
	if r.Method != http.MethodPost || xml.Unmarshal(raw, &env) != nil || env.XMLName.Space != nsSOAP || env.XMLName.Local != "Envelope" {
		fault(w, http.StatusBadRequest, "not a SOAP 1.2 envelope")
		return
	}
	body := env.child("Body")
	if body == nil || len(body.Children) != 1 {
		fault(w, http.StatusBadRequest, "the SOAP body must hold one operation")
		return
	}
	op := body.Children[0]
	want, ok := operations[op.XMLName.Local]
	switch {
	case !ok:
		fault(w, http.StatusBadRequest, "unsupported operation "+op.XMLName.Local)
		return
	case op.XMLName.Space != want.ns:
		fault(w, http.StatusBadRequest, fmt.Sprintf("%s in namespace %q, want %q", op.XMLName.Local, op.XMLName.Space, want.ns))
		return
	case r.URL.Path != want.path:
		fault(w, http.StatusBadRequest, fmt.Sprintf("%s sent to %s, want %s", op.XMLName.Local, r.URL.Path, want.path))
		return
	}
	if c.opts.Username != "" && !c.authorized(env.path("Header", "Security", "UsernameToken")) {
		fault(w, http.StatusUnauthorized, "Sender not Authorized")
		return
	}

	call := Call{Operation: op.XMLName.Local, ProfileToken: op.child("ProfileToken").text()}
	if v := op.child("Velocity"); v != nil {
		if pt := v.child("PanTilt"); pt != nil {
			call.PanX, call.PanY = pt.attr("x"), pt.attr("y")
		}
		if z := v.child("Zoom"); z != nil {
			call.Zoom = z.attr("x")
		}
	}
	call.PresetToken = op.child("PresetToken").text()
	if call.Operation == "Stop" {
		call.StopPanTilt, call.StopZoom = op.child("PanTilt").text(), op.child("Zoom").text()
	}
	c.mu.Lock()
	c.calls = append(c.calls, call)
	c.mu.Unlock()

	switch call.Operation {
	case "GetCapabilities":
		base := "http://" + r.Host
		respond(w, `<tds:GetCapabilitiesResponse><tds:Capabilities>`+
			`<tt:Device><tt:XAddr>`+base+DevicePath+`</tt:XAddr></tt:Device>`+
			`<tt:Media><tt:XAddr>`+base+MediaPath+`</tt:XAddr></tt:Media>`+
			`<tt:PTZ><tt:XAddr>`+base+PTZPath+`</tt:XAddr></tt:PTZ>`+
			`</tds:Capabilities></tds:GetCapabilitiesResponse>`)
	case "GetProfiles":
		respond(w, `<trt:GetProfilesResponse>`+
			`<trt:Profiles token="video-only" fixed="true"><tt:Name>video</tt:Name></trt:Profiles>`+
			`<trt:Profiles token="`+ProfileToken+`" fixed="true"><tt:Name>main</tt:Name>`+
			`<tt:PTZConfiguration token="ptz-config"><tt:Name>ptz</tt:Name><tt:NodeToken>ptz-node</tt:NodeToken></tt:PTZConfiguration>`+
			`</trt:Profiles></trt:GetProfilesResponse>`)
	case "GetPresets":
		if call.ProfileToken != ProfileToken {
			fault(w, http.StatusBadRequest, "no such profile")
			return
		}
		var b strings.Builder
		for i, tok := range c.opts.Presets {
			fmt.Fprintf(&b, `<tptz:Preset token="%s"><tt:Name>preset %d</tt:Name></tptz:Preset>`, tok, i+1)
		}
		respond(w, `<tptz:GetPresetsResponse>`+b.String()+`</tptz:GetPresetsResponse>`)
	default:
		if call.ProfileToken != ProfileToken {
			fault(w, http.StatusBadRequest, "no such profile")
			return
		}
		respond(w, `<tptz:`+call.Operation+`Response/>`)
	}
}

// authorized checks a WS-Security UsernameToken with a password digest:
// Base64(SHA1(Base64Decode(Nonce) + Created + Password)).
func (c *Camera) authorized(tok *node) bool {
	if tok == nil || tok.child("Username").text() != c.opts.Username {
		return false
	}
	nonce, err := base64.StdEncoding.DecodeString(tok.child("Nonce").text())
	if err != nil {
		return false
	}
	sum := sha1.Sum([]byte(string(nonce) + tok.child("Created").text() + c.opts.Password))
	return tok.child("Password").text() == base64.StdEncoding.EncodeToString(sum[:])
}

func respond(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<s:Envelope xmlns:s="%s" xmlns:tds="%s" xmlns:trt="%s" xmlns:tptz="%s" xmlns:tt="%s"><s:Body>%s</s:Body></s:Envelope>`,
		nsSOAP, nsDevice, nsMedia, nsPTZ, nsSchema, body)
}

func fault(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	var esc strings.Builder
	_ = xml.EscapeText(&esc, []byte(reason))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<s:Envelope xmlns:s="%s"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code>`+
		`<s:Reason><s:Text xml:lang="en">%s</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`, nsSOAP, esc.String())
}
