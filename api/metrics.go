package api

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/opennvr/vms/workflows/contract"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// ChannelStates counts channels by recording state and sums their
// restarts; *store.Store is one.
type ChannelStates interface {
	ChannelStateCounts(ctx context.Context) (byState map[string]int, restarts int, err error)
}

func newMetrics(channels ChannelStates) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vms_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vms_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
	}
	m.registry.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if channels != nil {
		m.registry.MustRegister(&recordingCollector{channels: channels})
	}
	return m
}

// recordingCollector reads the channels' recording states from the
// database at scrape time (one grouped query), so every API replica shows
// the same fleet-wide figures.
type recordingCollector struct{ channels ChannelStates }

var (
	channelsDesc = prometheus.NewDesc("vms_channels", "Channels by recording state (recording, starting, retrying, agent_offline, off).",
		[]string{"state"}, nil)
	restartsDesc = prometheus.NewDesc("vms_channel_recording_restarts", "Recording streams restarted by the channels' supervisors, over all channels.",
		nil, nil)
)

func (c *recordingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- channelsDesc
	ch <- restartsDesc
}

func (c *recordingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	byState, restarts, err := c.channels.ChannelStateCounts(ctx)
	if err != nil {
		slog.Warn("metrics: channel states", "err", err)
		return
	}
	for _, state := range []string{contract.StateRecording, contract.StateStarting, contract.StateRetrying, contract.StateAgentOffline, contract.StateOff} {
		ch <- prometheus.MustNewConstMetric(channelsDesc, prometheus.GaugeValue, float64(byState[state]), state)
	}
	ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.GaugeValue, float64(restarts))
}

// observe logs and counts every request by its route pattern (never the raw
// path or query, which may carry ids and signatures).
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	d := time.Since(start)
	code := strconv.Itoa(c.Writer.Status())
	s.metrics.requests.WithLabelValues(route, c.Request.Method, code).Inc()
	s.metrics.duration.WithLabelValues(route, c.Request.Method).Observe(d.Seconds())
	if route != "/healthz" && route != "/metrics" {
		slog.InfoContext(c, "http", "method", c.Request.Method, "route", route, "status", c.Writer.Status(), "ms", d.Milliseconds())
	}
}
