package agent

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/IOTechSystems/onvif"
	"github.com/IOTechSystems/onvif/gosoap"
	"github.com/IOTechSystems/onvif/media"
	"github.com/IOTechSystems/onvif/ptz"
	xonvif "github.com/IOTechSystems/onvif/xsd/onvif"

	"github.com/opennvr/vms/control"
)

// PTZ drives a camera's pan, tilt and zoom through its ONVIF PTZ service:
// directions and zoom are a ContinuousMove at ±speed in the generic
// velocity space (the camera keeps moving until stop), stop is Stop of pan,
// tilt and zoom, home is GotoHomePosition, and preset n goes to the n-th
// preset GetPresets lists. Every call uses the first media profile that has
// a PTZ configuration.
func (e *Executor) PTZ(ctx context.Context, cam control.Camera, action string, preset int, speed float64) error {
	if cam.ONVIF == "" {
		return errors.New("ptz: the command names no ONVIF address")
	}
	if speed == 0 {
		speed = control.DefaultSpeed
	}
	if err := control.ValidatePTZ(action, preset, speed); err != nil {
		return fmt.Errorf("ptz: %w", err)
	}
	dev, err := e.onvifDevice(ctx, cam)
	if err != nil {
		return err
	}
	profile, err := ptzProfile(dev)
	if err != nil {
		return err
	}
	token := xonvif.ReferenceToken(profile)
	switch action {
	case control.ActionUp:
		return moveContinuously(dev, profile, &vector2D{Y: speed}, nil)
	case control.ActionDown:
		return moveContinuously(dev, profile, &vector2D{Y: -speed}, nil)
	case control.ActionLeft:
		return moveContinuously(dev, profile, &vector2D{X: -speed}, nil)
	case control.ActionRight:
		return moveContinuously(dev, profile, &vector2D{X: speed}, nil)
	case control.ActionZoomIn:
		return moveContinuously(dev, profile, nil, &vector1D{X: speed})
	case control.ActionZoomOut:
		return moveContinuously(dev, profile, nil, &vector1D{X: -speed})
	case control.ActionStop:
		return soapCall(dev, "Stop", ptz.Stop{ProfileToken: token, PanTilt: true, Zoom: true}, &ptz.StopResponse{})
	case control.ActionHome:
		return soapCall(dev, "GotoHomePosition", ptz.GotoHomePosition{ProfileToken: &token}, &ptz.GotoHomePositionResponse{})
	case control.ActionPreset:
		var presets ptz.GetPresetsResponse
		if err := soapCall(dev, "GetPresets", ptz.GetPresets{ProfileToken: token}, &presets); err != nil {
			return err
		}
		if preset > len(presets.Preset) {
			return fmt.Errorf("ptz: preset %d does not exist (the camera has %d)", preset, len(presets.Preset))
		}
		presetToken := presets.Preset[preset-1].Token
		return soapCall(dev, "GotoPreset", ptz.GotoPreset{ProfileToken: &token, PresetToken: &presetToken}, &ptz.GotoPresetResponse{})
	}
	return fmt.Errorf("ptz: unknown action %q", action)
}

// onvifDevice connects to the camera's ONVIF device service (GetCapabilities
// tells where its media and PTZ services are).
func (e *Executor) onvifDevice(ctx context.Context, cam control.Camera) (*onvif.Device, error) {
	base := e.client()
	// The library takes no context: every request it makes carries ctx
	// through the transport instead.
	hc := &http.Client{Transport: ctxTransport{ctx: ctx, base: base.Transport}, Timeout: base.Timeout}
	params := onvif.DeviceParams{Xaddr: cam.ONVIF, Username: cam.Username, Password: cam.Password, HttpClient: hc, AuthMode: onvif.NoAuth}
	if cam.Username != "" {
		// WS-UsernameToken in the SOAP header, and HTTP digest when the
		// camera challenges: what ONVIF cameras accept between them.
		params.AuthMode = onvif.Both
	}
	dev, err := onvif.NewDevice(params)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ptz: ONVIF device at %s: %w", cam.ONVIF, ctx.Err())
		}
		return nil, fmt.Errorf("ptz: no ONVIF device service at %s (unreachable, not ONVIF, or the credentials were refused)", cam.ONVIF)
	}
	if dev.GetEndpoint("ptz") == "" {
		return nil, fmt.Errorf("ptz: the ONVIF device at %s has no PTZ service", cam.ONVIF)
	}
	return dev, nil
}

// ptzProfile is the token of the first media profile with a PTZ
// configuration (else the first profile).
func ptzProfile(dev *onvif.Device) (string, error) {
	var out media.GetProfilesResponse
	if err := soapCall(dev, "GetProfiles", media.GetProfiles{}, &out); err != nil {
		return "", err
	}
	if len(out.Profiles) == 0 {
		return "", errors.New("ptz: the camera has no media profile")
	}
	for _, p := range out.Profiles {
		if p.PTZConfiguration != nil {
			return string(p.Token), nil
		}
	}
	return string(out.Profiles[0].Token), nil
}

// continuousMove is the ONVIF ContinuousMove request. The library's
// ptz.ContinuousMove velocity drops a zero x or y attribute (omitempty),
// which the ONVIF schema requires, so this one always writes both.
type continuousMove struct {
	XMLName      string   `xml:"tptz:ContinuousMove"`
	ProfileToken string   `xml:"tptz:ProfileToken"`
	Velocity     velocity `xml:"tptz:Velocity"`
}

type velocity struct {
	PanTilt *vector2D `xml:"onvif:PanTilt,omitempty"`
	Zoom    *vector1D `xml:"onvif:Zoom,omitempty"`
}

type vector2D struct {
	X float64 `xml:"x,attr"`
	Y float64 `xml:"y,attr"`
}

type vector1D struct {
	X float64 `xml:"x,attr"`
}

func moveContinuously(dev *onvif.Device, profile string, panTilt *vector2D, zoom *vector1D) error {
	body, err := xml.Marshal(continuousMove{ProfileToken: profile, Velocity: velocity{PanTilt: panTilt, Zoom: zoom}})
	if err != nil {
		return err
	}
	resp, err := dev.SendSoap(dev.GetEndpoint("ptz"), string(body))
	if err != nil {
		return fmt.Errorf("ptz: ContinuousMove: %w", withoutURL(err))
	}
	return readSOAP("ContinuousMove", resp, &ptz.ContinuousMoveResponse{})
}

// soapCall sends request (a library request type: its package names the
// service) and decodes the answer into response.
func soapCall(dev *onvif.Device, op string, request, response any) error {
	resp, err := dev.CallMethod(request)
	if err != nil {
		return fmt.Errorf("ptz: %s: %w", op, withoutURL(err))
	}
	return readSOAP(op, resp, response)
}

// readSOAP decodes a SOAP answer, turning a fault or an HTTP error into an
// error that names the operation.
func readSOAP(op string, resp *http.Response, response any) error {
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("ptz: %s: %w", op, err)
	}
	env := gosoap.NewSOAPEnvelope(response)
	decodeErr := xml.Unmarshal(raw, env)
	switch {
	case decodeErr == nil && env.Body.Fault != nil:
		reason := strings.TrimSpace(env.Body.Fault.Reason.Text)
		if reason == "" {
			reason = strings.TrimSpace(env.Body.Fault.Code.Subcode.Value + " " + env.Body.Fault.Code.Value)
		}
		return fmt.Errorf("ptz: %s refused by the camera: %s", op, reason)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("ptz: %s: the camera refused the credentials (HTTP 401)", op)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("ptz: %s: the camera answered HTTP %d", op, resp.StatusCode)
	case decodeErr != nil:
		return fmt.Errorf("ptz: %s: unreadable answer: %w", op, decodeErr)
	}
	return nil
}

// ctxTransport makes every request it carries use ctx.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r.WithContext(t.ctx))
}
