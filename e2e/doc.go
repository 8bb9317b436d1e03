// Package e2e holds the end-to-end tests and benchmarks of the media path:
// a demo camera pulled by the real agent, pushed to a real media worker,
// segmented into fMP4, spooled and uploaded to the embedded S3, recorded by
// the stream workflows on the Temporal dev server and listed and clipped
// through the REST API, checked with ffprobe. Everything runs on 127.0.0.1
// in the test binary, or in children of it: the S3 server, and the media
// worker where a test kills it with SIGKILL or a benchmark measures it alone.
//
// The package has no code of its own; see the _test.go files and
// docs/benchmarks.md for the figures the benchmarks produce.
package e2e
