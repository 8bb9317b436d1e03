package reconcile

import (
	"net/url"
	"testing"
)

func TestRegionFromQueueURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://sqs.eu-west-1.amazonaws.com/123456789012/vms":       "eu-west-1",
		"https://sqs.cn-north-1.amazonaws.com.cn/123456789012/vms":   "cn-north-1",
		"https://us-east-2.queue.amazonaws.com/123456789012/vms":     "us-east-2",
		"http://127.0.0.1:9324/000000000000/vms":                     "",
		"https://sqs.example.com/123456789012/vms":                   "",
		"https://vpce-1a2b3c.sqs.us-east-1.vpce.amazonaws.com/1/vms": "",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := regionFromQueueURL(u); got != want {
			t.Errorf("regionFromQueueURL(%s) = %q, want %q", raw, got, want)
		}
	}
}
