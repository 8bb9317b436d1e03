package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

const (
	defaultSQSWait     = 20 * time.Second // the longest long poll SQS allows
	maxSQSMessages     = 10               // the most one ReceiveMessage returns
	sqsMaxAttempts     = 5
	sqsBodyLogSnippet  = 200
	sqsLegacyHostLabel = "queue" // <region>.queue.amazonaws.com
)

// SQSConfig selects the queue an SQSSource reads.
type SQSConfig struct {
	// QueueURL is the queue S3 sends the bucket's ObjectCreated events to
	// (directly, or through SNS).
	QueueURL string
	// Region defaults to the one in an AWS queue URL, then to the AWS
	// configuration (AWS_REGION, profile).
	Region string
	// Endpoint overrides the SQS endpoint (an SQS-compatible server);
	// empty for AWS.
	Endpoint string
	// AccessKey and SecretKey; empty uses the default AWS credential chain.
	AccessKey, SecretKey string
	// WaitTime is the long-poll wait of one receive (default and maximum
	// 20 s).
	WaitTime time.Duration
	// VisibilityTimeout hides a received message from other consumers
	// while it is handled; zero keeps the queue's setting. It must cover
	// the Reconciler's Grace and retries.
	VisibilityTimeout time.Duration
	// MaxMessages per receive, 1 to 10 (default 10).
	MaxMessages int
	Logger      *slog.Logger
}

// SQSSource long-polls an SQS queue of S3 event notifications. Acking a
// message deletes it; a message never acked comes back after its
// visibility timeout (and, with a redrive policy, ends in the dead-letter
// queue). Bodies that are no S3 notification are logged and deleted.
type SQSSource struct {
	client *sqs.Client
	cfg    SQSConfig
}

// NewSQSSource builds the SQS client. It does not contact the queue.
func NewSQSSource(ctx context.Context, cfg SQSConfig) (*SQSSource, error) {
	u, err := url.Parse(cfg.QueueURL)
	if cfg.QueueURL == "" || err != nil || u.Host == "" {
		return nil, fmt.Errorf("reconcile: invalid SQS queue URL %q", cfg.QueueURL)
	}
	if cfg.Region == "" {
		cfg.Region = regionFromQueueURL(u)
	}
	if cfg.WaitTime <= 0 || cfg.WaitTime > defaultSQSWait {
		cfg.WaitTime = defaultSQSWait
	}
	if cfg.MaxMessages <= 0 || cfg.MaxMessages > maxSQSMessages {
		cfg.MaxMessages = maxSQSMessages
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := []func(*config.LoadOptions) error{config.WithRetryMaxAttempts(sqsMaxAttempts)}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("reconcile: load aws config: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("reconcile: no region for SQS queue %s: set the SQS region or AWS_REGION", cfg.QueueURL)
	}
	client := sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &SQSSource{client: client, cfg: cfg}, nil
}

// regionFromQueueURL reads the region out of an AWS queue URL
// (https://sqs.<region>.amazonaws.com/… or the legacy
// https://<region>.queue.amazonaws.com/…); "" for any other host.
func regionFromQueueURL(u *url.URL) string {
	labels := strings.Split(u.Hostname(), ".")
	if len(labels) < 4 || !strings.HasPrefix(strings.Join(labels[2:], "."), "amazonaws.com") {
		return ""
	}
	switch {
	case labels[0] == "sqs":
		return labels[1]
	case labels[1] == sqsLegacyHostLabel:
		return labels[0]
	}
	return ""
}

// Receive long-polls the queue once; it may return no messages.
func (s *SQSSource) Receive(ctx context.Context) ([]Message, error) {
	in := &sqs.ReceiveMessageInput{
		QueueUrl:            &s.cfg.QueueURL,
		MaxNumberOfMessages: int32(s.cfg.MaxMessages),
		WaitTimeSeconds:     int32(s.cfg.WaitTime / time.Second),
	}
	if s.cfg.VisibilityTimeout > 0 {
		in.VisibilityTimeout = int32(s.cfg.VisibilityTimeout / time.Second)
	}
	out, err := s.client.ReceiveMessage(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("reconcile: receive from %s: %w", s.cfg.QueueURL, err)
	}
	msgs := make([]Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		body := aws.ToString(m.Body)
		events, err := ParseNotification([]byte(body))
		if err != nil {
			s.cfg.Logger.Warn("reconcile: deleting SQS message that is no S3 event notification",
				"message_id", aws.ToString(m.MessageId), "err", err, "body", snippet(body))
		}
		msgs = append(msgs, Message{Events: events, Ack: s.deleter(m.ReceiptHandle)})
	}
	return msgs, nil
}

func (s *SQSSource) deleter(receipt *string) func(context.Context) error {
	return func(ctx context.Context) error {
		if receipt == nil {
			return errors.New("reconcile: SQS message without a receipt handle")
		}
		_, err := s.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &s.cfg.QueueURL, ReceiptHandle: receipt})
		if err != nil {
			return fmt.Errorf("reconcile: delete SQS message: %w", err)
		}
		return nil
	}
}

func snippet(s string) string {
	if len(s) > sqsBodyLogSnippet {
		return s[:sqsBodyLogSnippet] + "…"
	}
	return s
}
