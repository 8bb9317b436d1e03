// Package mediaworker is the NVR media worker: it accepts camera streams from
// agents over WebSocket, cuts them into fMP4 recording segments, spools and
// uploads the segments and tells the control plane about them.
package mediaworker
