// Package devserver runs the Temporal dev server (temporal server
// start-dev) the way this project needs it, for `vms dev` and the tests'
// temporaltest: these settings, the search attributes, 127.0.0.1 only, and
// as a child process that dies with its parent.
package devserver

// Args are the Temporal dev server flags the tests and `vms dev` need
// beyond the defaults, two fixes (measured on this dev server):
//
//   - It runs one history shard, whose queue processors poll for new tasks at
//     most 20 times a second: past a short burst, every workflow and activity
//     task waits ~45 ms before a worker can get it (a one-activity workflow
//     took 150 ms instead of 20 ms).
//   - Task queues have four partitions; a task landing on a partition where no
//     poller waits is forwarded to the root at most ten times a second, and
//     every few dozen tasks one waited exactly 2 s (clip p99 2 s instead of
//     50 ms). One partition is plenty for a dev server.
//
// A production cluster has hundreds of shards, and partitions are a
// throughput setting there.
var Args = []string{
	"--dynamic-config-value", "history.transferProcessorMaxPollRPS=10000",
	"--dynamic-config-value", "history.timerProcessorMaxPollRPS=10000",
	"--dynamic-config-value", "history.visibilityProcessorMaxPollRPS=10000",
	"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
	"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
}
