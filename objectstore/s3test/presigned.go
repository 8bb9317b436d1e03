package s3test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// Presigned sends body to a presigned URL with method, as a browser or a
// camera does (a plain HTTP client, no credentials), with Content-Type
// unless it is empty, and returns the answer's status and body.
func Presigned(tb testing.TB, method, url, contentType string, body []byte) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read the answer: %v", method, url, err)
	}
	return resp.StatusCode, got
}

// Upload PUTs body to a presigned URL and fails the test unless S3 takes it.
func Upload(tb testing.TB, url, contentType string, body []byte) {
	tb.Helper()
	if status, answer := Presigned(tb, http.MethodPut, url, contentType, body); status != http.StatusOK {
		tb.Fatalf("PUT to the presigned URL: %d %q", status, answer)
	}
}

// Download GETs a presigned URL and returns the body of a 200 answer; any
// other answer fails the test.
func Download(tb testing.TB, url string) []byte {
	tb.Helper()
	status, body := Presigned(tb, http.MethodGet, url, "", nil)
	if status != http.StatusOK {
		tb.Fatalf("GET %s: %d %q", url, status, body)
	}
	return body
}
