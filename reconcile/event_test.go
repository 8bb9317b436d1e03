package reconcile_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/opennvr/vms/reconcile"
)

func TestParseNotification(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 31, 123_000_000, time.UTC)
	key := "recordings/0197a0a4-6b1e-7c3a-9d2e-1f2a3b4c5d6e/2025/06/01/1748779200400-0197a0a4-7000-7000-8000-000000000001.mp4"
	created := reconcile.Event{Name: "ObjectCreated:Put", Bucket: "vms", Key: key, Size: 1234,
		ETag: "d41d8cd98f00b204e9800998ecf8427e", Time: at}
	// As versitygw (the embedded server) posts it: "s3:" prefixed names,
	// second-precision times, keys as they are.
	versity := fmt.Sprintf(`{"Records":[{"eventVersion":"2.2","eventSource":"aws:s3","awsRegion":"us-east-1",
		"eventTime":"2025-06-01T12:00:31Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"PrincipalId":"vmsdev"},
		"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"","x-amz-id-2":""},
		"s3":{"s3SchemaVersion":"1.0","configurationId":"webhook-global","bucket":{"name":"vms","ownerIdentity":{"PrincipalId":"vmsdev"},
		"arn":"arn:aws:s3:::/vms/%s"},"object":{"key":"%s","size":1234,"eTag":"\"d41d8cd98f00b204e9800998ecf8427e\"",
		"versionId":null,"sequencer":"1842A0B7C3D2E1F0"}},"glacierEventData":{"restoreEventData":{"lifecycleRestorationExpiryTime":"","lifecycleRestoreStorageClass":""}}}]}`,
		key, key)
	versityEvent := created
	versityEvent.Time = at.Truncate(time.Second)

	tests := []struct {
		name string
		body string
		want []reconcile.Event
		err  bool
	}{
		{name: "S3 event", body: s3Event("vms", at, s3Object{key: key, size: 1234}), want: []reconcile.Event{created}},
		{name: "SNS-wrapped S3 event", body: snsWrapped(s3Event("vms", at, s3Object{key: key, size: 1234})), want: []reconcile.Event{created}},
		{name: "embedded server event", body: versity, want: []reconcile.Event{versityEvent}},
		{name: "several records, keys decoded", body: s3Event("vms", at,
			s3Object{key: key, size: 1234}, s3Object{key: "snapshots/cam 1/a+b.jpg", size: 7, event: "ObjectRemoved:Delete"}),
			want: []reconcile.Event{created, {Name: "ObjectRemoved:Delete", Bucket: "vms", Key: "snapshots/cam 1/a+b.jpg",
				Size: 7, ETag: "d41d8cd98f00b204e9800998ecf8427e", Time: at}}},
		{name: "S3 test event", body: s3TestEvent},
		{name: "SNS-wrapped test event", body: snsWrapped(s3TestEvent)},
		{name: "embedded server test event", body: `{"Bucket":"Test-Bucket","Event":"s3:TestEvent","Service":"S3","Time":"2025-06-01T12:00:00Z"}`},
		{name: "not JSON", body: "hello", err: true},
		{name: "JSON of something else", body: `{"hello":"world"}`, err: true},
		{name: "SNS subscription confirmation", body: `{"Type":"SubscriptionConfirmation","Message":"You have chosen to subscribe","SubscribeURL":"https://sns.example/"}`, err: true},
		{name: "SNS wrapping SNS", body: snsWrapped(snsWrapped(s3TestEvent)), err: true},
		{name: "records not a list", body: `{"Records":{"a":1}}`, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := reconcile.ParseNotification([]byte(tc.body))
			if tc.err {
				if !errors.Is(err, reconcile.ErrNotNotification) {
					t.Fatalf("err = %v, want ErrNotNotification", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d events %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %d = %+v\nwant      %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
