package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series.
type metrics struct {
	reg         *prometheus.Registry
	connections *prometheus.CounterVec // verdict, reason
	publishes   *prometheus.CounterVec // verdict, reason
	subscribes  *prometheus.CounterVec
	tlsFailures prometheus.Counter
	bans        *prometheus.CounterVec // kind (ip, identity), reason
	findings    *prometheus.CounterVec // id
	cutOffs     prometheus.Counter
	upstream    *prometheus.CounterVec // direction (out, in), outcome
	bytesIn     prometheus.Counter
	// The allowed decisions' counters, resolved once: they are counted on
	// every connection, subscription and PUBLISH.
	connAllowed, subAllowed, pubAllowed prometheus.Counter
}

func newMetrics(activeBans, clients, auditLines, auditRepeats func() float64) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	ns := "iomtguard_gateway"
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_total",
		Help: "MQTT connection decisions."}, []string{"verdict", "reason"})
	m.publishes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "publishes_total",
		Help: "PUBLISH decisions."}, []string{"verdict", "reason"})
	m.subscribes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "subscriptions_total",
		Help: "Subscription decisions, per topic filter."}, []string{"verdict", "reason"})
	m.tlsFailures = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "tls_failures_total",
		Help: "TLS handshakes refused (no, unknown, revoked or expired certificate, timeout)."})
	m.bans = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "bans_total",
		Help: "Bans imposed."}, []string{"kind", "reason"})
	m.findings = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "findings_total",
		Help: "Detector findings on the gateway's traffic."}, []string{"id"})
	m.cutOffs = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "sessions_cut_off_total",
		Help: "Open sessions ended by a revocation, a ban or a reload that removed their identity or password."})
	m.upstream = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "upstream_messages_total",
		Help: "Messages relayed to (out) and from (in) the upstream broker, by outcome."}, []string{"direction", "outcome"})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "publish_bytes_total",
		Help: "Payload bytes of allowed PUBLISH packets."})
	ab := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "bans_active", Help: "Bans in force."}, activeBans)
	cg := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "clients_connected", Help: "Connected MQTT clients."}, clients)
	al := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "audit_lines_total",
		Help: "Lines written to the audit log (records and summaries)."}, auditLines)
	ar := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "audit_summarised_total",
		Help: "Audit records counted into summary lines instead of written one by one."}, auditRepeats)
	m.reg.MustRegister(m.connections, m.publishes, m.subscribes, m.tlsFailures, m.bans, m.findings, m.cutOffs, m.upstream, m.bytesIn,
		ab, cg, al, ar, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.connAllowed = m.connections.WithLabelValues("allow", "ok")
	m.subAllowed = m.subscribes.WithLabelValues("allow", "ok")
	m.pubAllowed = m.publishes.WithLabelValues("allow", "ok")
	return m
}
