// Package objectstore stores recordings, snapshots and clips in an
// S3-compatible bucket. Client wraps aws-sdk-go-v2 with the few operations
// the VMS needs; Serve and StartEmbedded run a local S3 server (versitygw
// over a directory) for the single-binary dev default.
package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("objectstore: object not found")

const (
	defaultRegion = "us-east-1"
	maxAttempts   = 5
)

// Config selects the S3 endpoint and bucket a Client talks to.
type Config struct {
	Endpoint  string // e.g. http://127.0.0.1:9000; empty = AWS default
	Region    string // default "us-east-1"
	Bucket    string
	AccessKey string // empty = default AWS credential chain
	SecretKey string
	PathStyle bool // true for local servers
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ContentType  string
	LastModified time.Time
	ETag         string // without the quotes
	// Metadata is the object's user metadata (x-amz-meta-*), keys lower
	// case and without the prefix.
	Metadata map[string]string
}

// PutOptions are the optional attributes of an uploaded object.
type PutOptions struct {
	ContentType string
	// Metadata is stored as user metadata (x-amz-meta-<key>). S3 treats
	// keys as case-insensitive and Head returns them lower case, so use
	// lower-case keys; S3 caps all of it at 2 KB.
	Metadata map[string]string
}

// Client reads and writes objects in one bucket.
type Client struct {
	s3      *s3.Client
	presign *s3.PresignClient
	bucket  string
	region  string
	// plainHTTP is set for http:// endpoints, where the SDK can only sign
	// bodies it can rewind (trailing checksums need TLS).
	plainHTTP bool
}

// New builds a Client. It does not contact the server; call EnsureBucket to
// check connectivity and create the bucket.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("objectstore: bucket is required")
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithRetryMaxAttempts(maxAttempts),
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objectstore: load aws config: %w", err)
	}
	plainHTTP := false
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("objectstore: invalid endpoint %q", cfg.Endpoint)
		}
		plainHTTP = u.Scheme == "http"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Multipart objects carry composite checksums the SDK cannot verify
		// on Get; it would log a warning for every such download.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &Client{
		s3:        client,
		presign:   s3.NewPresignClient(client),
		bucket:    cfg.Bucket,
		region:    cfg.Region,
		plainHTTP: plainHTTP,
	}, nil
}

// EnsureBucket creates the bucket if it does not exist yet.
func (c *Client) EnsureBucket(ctx context.Context) error {
	_, err := c.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &c.bucket})
	if err == nil {
		return nil
	}
	if code := apiCode(err); code != "NotFound" && code != "NoSuchBucket" {
		return fmt.Errorf("objectstore: head bucket %s: %w", c.bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: &c.bucket}
	if c.region != defaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(c.region),
		}
	}
	_, err = c.s3.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("objectstore: create bucket %s: %w", c.bucket, err)
	}
	return nil
}

// Bucket is the bucket the client reads and writes.
func (c *Client) Bucket() string { return c.bucket }

// Put stores body under key. size is the exact body length, or -1 if
// unknown (the server may then refuse the upload; prefer
// NewMultipartWriter for streams of unknown length).
func (c *Client) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string) error {
	return c.PutWithOptions(ctx, key, body, size, PutOptions{ContentType: contentType})
}

// PutWithOptions is Put with user metadata and other optional attributes.
func (c *Client) PutWithOptions(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) error {
	in := &s3.PutObjectInput{Bucket: &c.bucket, Key: &key, Body: body}
	if size >= 0 {
		in.ContentLength = &size
	}
	if opts.ContentType != "" {
		in.ContentType = &opts.ContentType
	}
	if len(opts.Metadata) > 0 {
		in.Metadata = opts.Metadata
	}
	var optFns []func(*s3.Options)
	if _, seekable := body.(io.Seeker); !seekable && c.plainHTTP {
		// Over plain HTTP the SDK hashes the body before sending it, which
		// needs a rewindable body; stream it unsigned instead.
		optFns = append(optFns, unsignedPayload)
	}
	if _, err := c.s3.PutObject(ctx, in, optFns...); err != nil {
		return opError("put", key, err)
	}
	return nil
}

func unsignedPayload(o *s3.Options) {
	o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// Head returns the object's metadata, or an error wrapping ErrNotFound.
func (c *Client) Head(ctx context.Context, key string) (ObjectInfo, error) {
	out, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &c.bucket, Key: &key})
	if err != nil {
		return ObjectInfo{}, opError("head", key, err)
	}
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ContentType:  aws.ToString(out.ContentType),
		LastModified: aws.ToTime(out.LastModified),
		ETag:         strings.Trim(aws.ToString(out.ETag), `"`),
		Metadata:     out.Metadata,
	}, nil
}

// Get opens the object for reading. The caller must close the reader.
func (c *Client) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.bucket, Key: &key})
	if err != nil {
		return nil, ObjectInfo{}, opError("get", key, err)
	}
	return out.Body, ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ContentType:  aws.ToString(out.ContentType),
		LastModified: aws.ToTime(out.LastModified),
		ETag:         strings.Trim(aws.ToString(out.ETag), `"`),
		Metadata:     out.Metadata,
	}, nil
}

// GetRange opens length bytes of the object starting at offset; length <= 0
// reads to the end. A range past the end of the object yields fewer bytes
// (S3 clamps it), or an error if offset itself is past the end.
func (c *Client) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("objectstore: get range %s: negative offset %d", key, offset)
	}
	rng := fmt.Sprintf("bytes=%d-", offset)
	if length > 0 {
		rng += fmt.Sprint(offset + length - 1)
	}
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.bucket, Key: &key, Range: &rng})
	if err != nil {
		return nil, opError("get range", key, err)
	}
	return out.Body, nil
}

// Delete removes the object. Deleting a missing object is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	if _, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &c.bucket, Key: &key}); err != nil {
		return opError("delete", key, err)
	}
	return nil
}

// DeletePrefixOlderThan deletes every object under prefix last modified
// before the given time and returns how many it deleted. S3 timestamps have
// one-second resolution.
func (c *Client) DeletePrefixOlderThan(ctx context.Context, prefix string, before time.Time) (int, error) {
	deleted := 0
	pages := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: &c.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return deleted, fmt.Errorf("objectstore: list %s: %w", prefix, err)
		}
		// A page holds at most 1000 keys, the DeleteObjects batch limit.
		var batch []types.ObjectIdentifier
		for _, obj := range page.Contents {
			if aws.ToTime(obj.LastModified).Before(before) {
				batch = append(batch, types.ObjectIdentifier{Key: obj.Key})
			}
		}
		if len(batch) == 0 {
			continue
		}
		out, err := c.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &c.bucket,
			Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return deleted, fmt.Errorf("objectstore: delete batch under %s: %w", prefix, err)
		}
		deleted += len(batch) - len(out.Errors)
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return deleted, fmt.Errorf("objectstore: delete %s: %s: %s (and %d more failures)",
				aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
	}
	return deleted, nil
}

// PresignGet returns a URL that lets anyone holding it GET the object until
// expiry passes.
func (c *Client) PresignGet(ctx context.Context, key string, expiry time.Duration) (string, error) {
	req, err := c.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &c.bucket, Key: &key},
		s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("objectstore: presign get %s: %w", key, err)
	}
	return req.URL, nil
}

// PresignPut returns a URL that lets anyone holding it PUT the object until
// expiry passes. A non-empty contentType is signed, so the uploader must
// send exactly that Content-Type header.
func (c *Client) PresignPut(ctx context.Context, key, contentType string, expiry time.Duration) (string, error) {
	in := &s3.PutObjectInput{Bucket: &c.bucket, Key: &key}
	if contentType != "" {
		in.ContentType = &contentType
	}
	req, err := c.presign.PresignPutObject(ctx, in, s3.WithPresignExpires(expiry))
	if err != nil {
		return "", fmt.Errorf("objectstore: presign put %s: %w", key, err)
	}
	return req.URL, nil
}

// opError wraps an SDK error, mapping a missing object to ErrNotFound.
func opError(op, key string, err error) error {
	// HEAD responses have no body, so the SDK can only report "NotFound".
	if code := apiCode(err); code == "NoSuchKey" || code == "NotFound" {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("objectstore: %s %s: %w", op, key, err)
}

func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
