package objectstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// PartSize is the size of every part but the last that MultipartWriter
// uploads. S3 requires at least 5 MiB; with S3's 10,000-part limit, 8 MiB
// parts allow objects up to ~78 GiB while buffering only one part.
const PartSize = 8 << 20

// abortTimeout bounds the cleanup of a failed upload, which must run even
// when the writer's context is already cancelled.
const abortTimeout = 30 * time.Second

// MultipartWriter streams an object to S3 as a multipart upload, holding at
// most one part in memory. Close completes the upload; Abort discards it.
// The object becomes visible only after a successful Close.
// A MultipartWriter is not safe for concurrent use.
type MultipartWriter struct {
	// ctx is kept because io.Writer has no context parameter; it bounds
	// every request of this one upload.
	ctx      context.Context
	c        *Client
	key      string
	uploadID string
	buf      []byte
	parts    []types.CompletedPart
	err      error // sticky: the first failure, or errClosed
}

var errClosed = errors.New("objectstore: multipart writer closed")

// NewMultipartWriter starts a multipart upload of key. ctx bounds the whole
// upload, including later Write and Close calls.
func (c *Client) NewMultipartWriter(ctx context.Context, key, contentType string) (*MultipartWriter, error) {
	in := &s3.CreateMultipartUploadInput{
		Bucket:            &c.bucket,
		Key:               &key,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}
	if contentType != "" {
		in.ContentType = &contentType
	}
	out, err := c.s3.CreateMultipartUpload(ctx, in)
	if err != nil {
		return nil, opError("create multipart upload", key, err)
	}
	return &MultipartWriter{
		ctx:      ctx,
		c:        c,
		key:      key,
		uploadID: *out.UploadId,
		buf:      make([]byte, 0, PartSize),
	}, nil
}

// Write buffers p and uploads every part it completes. After an error the
// upload is aborted and every later call returns that error.
func (w *MultipartWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		m := min(len(p), PartSize-len(w.buf))
		w.buf = append(w.buf, p[:m]...)
		p, n = p[m:], n+m
		if len(w.buf) == PartSize {
			if err := w.uploadPart(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Close uploads the last part and completes the upload.
func (w *MultipartWriter) Close() error {
	if w.err != nil {
		if w.err == errClosed {
			return nil
		}
		return w.err
	}
	// An empty object still needs one (empty) part.
	if len(w.buf) > 0 || len(w.parts) == 0 {
		if err := w.uploadPart(); err != nil {
			return err
		}
	}
	_, err := w.c.s3.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &w.c.bucket,
		Key:             &w.key,
		UploadId:        &w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	})
	if err != nil {
		return w.fail(opError("complete multipart upload", w.key, err))
	}
	w.err = errClosed
	return nil
}

// Abort discards the upload and the parts sent so far. It is a no-op after
// Close or a failed Write (which already aborted).
func (w *MultipartWriter) Abort() error {
	if w.err != nil {
		return nil
	}
	w.err = errClosed
	return w.abort()
}

func (w *MultipartWriter) uploadPart() error {
	num := int32(len(w.parts) + 1)
	out, err := w.c.s3.UploadPart(w.ctx, &s3.UploadPartInput{
		Bucket:            &w.c.bucket,
		Key:               &w.key,
		UploadId:          &w.uploadID,
		PartNumber:        &num,
		Body:              bytes.NewReader(w.buf),
		ContentLength:     new(int64(len(w.buf))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return w.fail(fmt.Errorf("objectstore: upload part %d of %s: %w", num, w.key, err))
	}
	w.parts = append(w.parts, types.CompletedPart{
		PartNumber:    &num,
		ETag:          out.ETag,
		ChecksumCRC32: out.ChecksumCRC32,
	})
	w.buf = w.buf[:0]
	return nil
}

// fail records err, aborts the upload so no orphaned parts stay billed, and
// returns err.
func (w *MultipartWriter) fail(err error) error {
	w.err = err
	if abortErr := w.abort(); abortErr != nil {
		return errors.Join(err, abortErr)
	}
	return err
}

func (w *MultipartWriter) abort() error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	_, err := w.c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   &w.c.bucket,
		Key:      &w.key,
		UploadId: &w.uploadID,
	})
	if err != nil {
		return fmt.Errorf("objectstore: abort multipart upload of %s: %w", w.key, err)
	}
	return nil
}
