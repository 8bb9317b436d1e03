// Package workflows holds the durable flows of the NVR: ClipWorkflow,
// StreamSessionWorkflow and SnapshotWorkflow. This file is the one place
// callers take their ids, the task queue, signals, queries, updates and
// search attributes from; handlers and tests use these, never string
// literals.
//
// The definitions live in the leaf package workflows/contract, because the
// activities (which signal clip workflows) need them too and this package
// imports the activities; every name here is that definition, re-exported.
package workflows

import (
	"github.com/opennvr/vms/recording"
	"github.com/opennvr/vms/workflows/contract"
)

// TaskQueue is the one task queue every workflow worker polls.
const TaskQueue = contract.TaskQueue

// Workflow ids.
func ClipWorkflowID(clipID string) string         { return contract.ClipWorkflowID(clipID) }
func StreamWorkflowID(sessionID string) string    { return contract.StreamWorkflowID(sessionID) }
func SnapshotWorkflowID(snapshotID string) string { return contract.SnapshotWorkflowID(snapshotID) }

// Search attributes kept current by the workflows, so the Temporal UI can
// list jobs by status and channel.
var (
	ClipStatusKey     = contract.ClipStatusKey
	ChannelIDKey      = contract.ChannelIDKey
	SnapshotStatusKey = contract.SnapshotStatusKey
)

// SearchAttributes lists every custom search attribute, for registering
// them on a namespace (the dev server does so at start). All are Keyword.
var SearchAttributes = contract.SearchAttributes

// Signal, query and update names.
const (
	SignalSegment  = contract.SignalSegment  // a recording segment was stored (clip and stream workflows)
	SignalStarted  = contract.SignalStarted  // the media worker accepted the stream
	SignalStopped  = contract.SignalStopped  // the stream ended
	SignalComplete = contract.SignalComplete // the client finished its snapshot upload

	QueryProgress = contract.QueryProgress // clip progress

	UpdateAuthorize = contract.UpdateAuthorize // a media worker asks to accept a stream token
	UpdateUploadURL = contract.UpdateUploadURL // a client asks where to upload its snapshot
)

// Inputs, results and payloads (see package contract for their fields).
type (
	ClipInput        = contract.ClipInput
	ClipProgress     = contract.ClipProgress
	SegmentSignal    = contract.SegmentSignal
	StreamInput      = contract.StreamInput
	AuthorizeRequest = contract.AuthorizeRequest
	StreamGrant      = recording.Grant
	SegmentReport    = recording.SegmentReport
	SnapshotInput    = contract.SnapshotInput
)

// Retention names.
const (
	RetentionScheduleID = contract.RetentionScheduleID
	RetentionInterval   = contract.RetentionInterval
)

// PurgeChannelWorkflowID names the workflow that deletes a deleted
// channel's objects.
func PurgeChannelWorkflowID(channelID string) string {
	return contract.PurgeChannelWorkflowID(channelID)
}

// RetentionInput starts a retention sweep.
type RetentionInput = contract.RetentionInput
