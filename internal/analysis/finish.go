package analysis

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/iomtguard/iomtguard/internal/cluster"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/forecast"
	"github.com/iomtguard/iomtguard/internal/mqtt"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/stats"
)

// Limits of what the Result lists (the counts stay complete).
const (
	MaxHostRows = 1000
	MaxKPoints  = 5000 // distinct k-means points listed in the Result (all are clustered)
	GraphNodes  = 60   // busiest hosts drawn in the graph
	GraphEdges  = 200
)

// FindingsFunc produces findings once the models have run (detectors from
// package detect), given the model outputs they use.
type FindingsFunc func(detect.Models) []detect.Finding

// Result assembles the Result after the pass: it runs k-means and the ARIMA
// model (concurrently), then the detectors' final step.
func (a *Analyzer) Result(sum *pipeline.Summary, findings FindingsFunc) *Result {
	a.flushConns()
	a.stopColumns()
	a.foldLengths()
	now := a.opts.Now
	t0 := now()
	r := &Result{Tool: "iomtguard", Generated: now().UTC(), Inputs: sum.Inputs, Warnings: sum.Warnings,
		Timings: map[string]float64{}}
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	var wg sync.WaitGroup
	var tKMeans, tARIMA float64 // each goroutine writes its own; the map after the wait
	wg.Add(2)
	go func() {
		defer wg.Done()
		if a.opts.NoKMeans {
			return
		}
		t := now()
		r.KMeans = a.kmeans()
		tKMeans = now().Sub(t).Seconds()
	}()
	go func() {
		defer wg.Done()
		if a.opts.NoModel {
			r.Series = SeriesResult{Interval: a.opts.Interval.String(), IntervalSeconds: a.opts.Interval.Seconds(), Metric: "packets",
				Start: time.Unix(0, a.packets.Start()).UTC(), Values: a.packets.Values, MQTT: a.mqttSeries.Values}
			return
		}
		t := now()
		a.model(r)
		tARIMA = now().Sub(t).Seconds()
	}()
	a.overview(r, sum)
	a.describe(r)
	a.mqttSection(r)
	a.hostsSection(r)
	a.flowsSection(r)
	r.TLS = a.tls.result()
	wg.Wait()
	r.Timings["kmeans"], r.Timings["arima"] = tKMeans, tARIMA
	if r.KMeans != nil {
		r.Anomalies.KMeans = r.KMeans.Outliers
	}
	r.Anomalies.Level, r.Anomalies.RobustZ = a.opts.AnomalyLevel, a.opts.RobustZ
	if r.Anomalies.Series == nil {
		r.Anomalies.Series = []SeriesAnomaly{}
	}
	if r.Anomalies.KMeans == nil {
		r.Anomalies.KMeans = []KOutlier{}
	}
	r.Findings = []detect.Finding{}
	if findings != nil {
		m := detect.Models{Start: time.Unix(0, a.start), SeriesAnomalies: make([]detect.SeriesAnomaly, 0, len(r.Anomalies.Series))}
		for _, s := range r.Anomalies.Series {
			m.SeriesAnomalies = append(m.SeriesAnomalies, detect.SeriesAnomaly{Time: time.Unix(0, a.packets.Start()+int64(s.Time*1e9)),
				Observed: s.Observed, Expected: s.Expected, Lower: s.Lower, Upper: s.Upper, Score: s.Score, Reason: s.Reason})
		}
		m.SeriesInterval, m.SeriesMetric = a.opts.Interval, "packets"
		if r.KMeans != nil {
			for _, o := range r.KMeans.Outliers {
				m.Outliers = append(m.Outliers, detect.Outlier{Features: r.KMeans.Features, X: o.X, Count: o.Count, Score: o.Score,
					Frame: o.FirstFrame, Time: time.Unix(0, a.start+int64(o.Time*1e9))})
			}
		}
		r.Findings = findings(m)
		detect.Sort(r.Findings)
	}
	r.Anomalies.keepStrongest()
	r.Timings["finish"] = now().Sub(t0).Seconds()
	finite(r)
	return r
}

func (a *Analyzer) overview(r *Result, sum *pipeline.Summary) {
	o := &r.Overview
	o.Frames, o.Bytes = sum.Frames, sum.Bytes
	if sum.Frames > 0 {
		o.First, o.Last = time.Unix(0, sum.First).UTC(), time.Unix(0, sum.Last).UTC()
		o.SpanSeconds = float64(sum.Last-sum.First) / 1e9
	}
	o.Hosts = len(a.hosts)
	o.HostsEvicted, o.HostsRefused = a.hostsOver, a.hostsRefused
	o.ConversationsEvicted, o.ConversationsRefused = a.edgesOver, a.edgesRefused
	if a.hostsOver+a.hostsRefused > 0 {
		o.Hosts, o.HostsEstimated = max(o.Hosts, int(a.hostsSeen.Estimate())), true
		r.Warnings = append(r.Warnings, fmt.Sprintf("more hosts than the host table holds (%d): %d with the least traffic were let go "+
			"and newcomers with less refused %d times; the hosts and the graph show the busiest, and the number of hosts (%d) is estimated "+
			"(standard error %.1f %%)", a.opts.MaxHosts, a.hostsOver, a.hostsRefused,
			o.Hosts, 100*stats.DistinctError))
	}
	if a.edgesOver+a.edgesRefused > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("more conversations than the table holds (%d): %d with the fewest packets were let go "+
			"and newcomers with fewer refused %d times; the graph shows the heaviest", 4*a.opts.MaxHosts,
			a.edgesOver, a.edgesRefused))
	}
	o.MQTTClients = len(a.clientIDs)
	if a.clientIDsOver > 0 {
		o.MQTTClients, o.MQTTClientsEstimated = max(o.MQTTClients, int(a.clientIDsSeen.Estimate())), true
		r.Warnings = append(r.Warnings, fmt.Sprintf("more MQTT client IDs than are kept (%d): their number (%d) is estimated (standard error %.1f %%)",
			a.opts.MaxHosts, o.MQTTClients, 100*stats.DistinctError))
	}
	o.MQTTTLSClients = len(a.tls.clients)
	brokers := map[netip.Addr]bool{}
	for b := range a.brokers {
		brokers[b] = true
	}
	for s := range a.tls.servers {
		brokers[s.Addr()] = true
	}
	for _, b := range keys(brokers, func(x, y netip.Addr) int { return x.Compare(y) }) {
		o.Brokers = append(o.Brokers, b.String())
	}
	o.MQTTOverTLS = a.tls.res.MQTT
	if o.Brokers == nil {
		o.Brokers = []string{}
	}
	o.Versions = a.versions
	o.TCPStreams, o.MQTTConns, o.TLSConns, o.Cleartext, o.WebSocket = sum.TCPStreams, sum.MQTTConns, sum.TLSConns, a.cleartext, sum.WebSocketMQTT
	o.MQTTPackets = sum.MQTTPackets
	o.IPv4, o.IPv6, o.TCP, o.UDP = sum.IPv4, sum.IPv6, sum.TCP, sum.UDP
	o.LinkTypes, o.Decoded, o.Gaps, o.FromCSV = sum.LinkTypes, sum.Decoded, sum.Gaps, a.fromCSV
}

func (a *Analyzer) describe(r *Result) {
	r.Describe, r.DescribeMQTT = map[string]stats.Summary{}, map[string]stats.Summary{}
	r.DescribeOrder = describeFields
	// The columns are independent: summarised side by side (each sorts
	// what it holds), the largest first, so that no large one is left for
	// the end on one core (the summaries are the longest part of analyze's
	// finish).
	var all, mq [nFields]stats.Summary
	type job struct {
		des *stats.Describer
		out *stats.Summary
	}
	var jobs []job
	for i := range describeFields {
		for _, j := range []job{{&a.all[i], &all[i]}, {&a.mq[i], &mq[i]}} {
			if j.des.Count() > 0 {
				jobs = append(jobs, j)
			}
		}
	}
	slices.SortStableFunc(jobs, func(x, y job) int { return cmp.Compare(y.des.Held(), x.des.Held()) })
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			*j.out = j.des.Summary()
			<-sem
		}()
	}
	wg.Wait()
	for i, name := range describeFields {
		if a.all[i].Count() > 0 {
			r.Describe[name] = all[i]
		}
		if a.mq[i].Count() > 0 {
			r.DescribeMQTT[name] = mq[i]
		}
	}
}

func (a *Analyzer) mqttSection(r *Result) {
	m := &r.MQTT
	m.MsgTypes, m.MsgTypeNames, m.QoS = map[string]int64{}, map[string]int64{}, map[string]int64{}
	for t, n := range a.msgTypes {
		if n > 0 {
			m.MsgTypes[fmt.Sprint(t)] = n
			m.MsgTypeNames[mqtt.Type(t).String()] = n
		}
	}
	for q, n := range a.qos {
		if n > 0 {
			m.QoS[fmt.Sprint(q)] = n
		}
	}
	for v, n := range a.lengths {
		m.Lengths = append(m.Lengths, Count{Value: int64(v), Count: n})
	}
	sort.Slice(m.Lengths, func(i, j int) bool { return m.Lengths[i].Value < m.Lengths[j].Value })
	m.Retained, m.Anomalies, m.Publishes, m.PayloadBytes = a.retained, a.anomalies, a.publishes, a.payload
	m.OtherTopicPublishes = a.topicOther
	if a.topicsOver+a.topicsRefused > 0 {
		m.TopicsEstimate = max(len(a.topics), int(a.topicsSeen.Estimate()))
		m.TopicsEvicted, m.TopicsRefused = a.topicsOver, a.topicsRefused
		r.Warnings = append(r.Warnings, fmt.Sprintf("more topics than the topic table holds (%d): %d with the fewest publishes were let go "+
			"and newcomers with fewer refused %d times; the topics listed are the busiest, %d publishes went to the others, and the number "+
			"of topics (%d) is estimated (standard error %.1f %%)", a.opts.MaxTopics, a.topicsOver, a.topicsRefused, a.topicOther,
			m.TopicsEstimate, 100*stats.DistinctError))
	}
	if a.subsRefused > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("more subscription filters than are kept (%d with wildcards, %d without): %d "+
			"subscriptions to others were not kept, and the topics' subscribers leave them out", a.opts.MaxTopics, a.opts.MaxTopics, a.subsRefused))
	}
	// Topics, with the subscribers whose filters match them: the filter
	// that is the topic itself, and those with wildcards that match it.
	for _, t := range a.topics {
		t.t.Publishers = sortedStrings(t.publishers)
		subs := map[string]bool{}
		for c := range a.subs[t.t.Topic] {
			subs[c] = true
		}
		for filter, who := range a.wildSubs {
			if TopicMatch(filter, t.t.Topic) {
				for c := range who {
					subs[c] = true
				}
			}
		}
		t.t.Subscribers = sortedStrings(subs)
		r.Topics = append(r.Topics, t.t)
	}
	sort.Slice(r.Topics, func(i, j int) bool {
		if r.Topics[i].Publishes != r.Topics[j].Publishes {
			return r.Topics[i].Publishes > r.Topics[j].Publishes
		}
		return r.Topics[i].Topic < r.Topics[j].Topic
	})
	if r.Topics == nil {
		r.Topics = []Topic{}
	}
}

// TopicMatch matches an MQTT topic filter ('+' one level, '#' the rest;
// wildcards at the start do not match '$' topics). [MQTT-4.7]
func TopicMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "#") || strings.HasPrefix(filter, "+")) {
		return false
	}
	for {
		fi := strings.IndexByte(filter, '/')
		ti := strings.IndexByte(topic, '/')
		fpart, tpart := filter, topic
		if fi >= 0 {
			fpart = filter[:fi]
		}
		if ti >= 0 {
			tpart = topic[:ti]
		}
		if fpart == "#" {
			return true
		}
		if fpart != "+" && fpart != tpart {
			return false
		}
		if fi < 0 || ti < 0 {
			// '#' also matches the parent level: "a/#" matches "a".
			return fi < 0 && ti < 0 || (ti < 0 && filter[fi+1:] == "#")
		}
		filter, topic = filter[fi+1:], topic[ti+1:]
	}
}

func (a *Analyzer) hostsSection(r *Result) {
	brokerAddr := map[string]bool{}
	for _, b := range r.Overview.Brokers {
		brokerAddr[b] = true
	}
	for _, h := range a.hosts {
		h.h.ClientIDs = sortedStrings(h.clientIDSet())
		h.h.Peers = h.peerCount()
		switch {
		case h.broker || brokerAddr[h.h.Addr]:
			h.h.Role = "broker"
		case h.publisher && h.subscriber:
			h.h.Role = "publisher+subscriber"
		case h.publisher:
			h.h.Role = "publisher"
		case h.subscriber:
			h.h.Role = "subscriber"
		case h.client:
			h.h.Role = "client"
		case h.tlsClient:
			h.h.Role = "client (MQTT over TLS)"
		default:
			h.h.Role = "unknown"
		}
		r.Hosts = append(r.Hosts, h.h)
	}
	sort.Slice(r.Hosts, func(i, j int) bool {
		if r.Hosts[i].Bytes != r.Hosts[j].Bytes {
			return r.Hosts[i].Bytes > r.Hosts[j].Bytes
		}
		return r.Hosts[i].Addr < r.Hosts[j].Addr
	})
	// The graph: the busiest hosts and the heaviest edges between them.
	shown := map[netip.Addr]bool{}
	for i, h := range r.Hosts {
		if i >= GraphNodes {
			break
		}
		if ip, err := netip.ParseAddr(h.Addr); err == nil {
			shown[ip] = true
		}
		r.Graph.Nodes = append(r.Graph.Nodes, Node{ID: h.Addr, Role: h.Role, Bytes: h.Bytes})
	}
	for k, e := range a.pairs {
		if shown[k.a] && shown[k.b] {
			r.Graph.Edges = append(r.Graph.Edges, edgeOut(k, e))
		}
	}
	sort.Slice(r.Graph.Edges, func(i, j int) bool {
		if r.Graph.Edges[i].Bytes != r.Graph.Edges[j].Bytes {
			return r.Graph.Edges[i].Bytes > r.Graph.Edges[j].Bytes
		}
		return r.Graph.Edges[i].A+r.Graph.Edges[i].B < r.Graph.Edges[j].A+r.Graph.Edges[j].B
	})
	if len(r.Graph.Edges) > GraphEdges {
		r.Graph.Edges = r.Graph.Edges[:GraphEdges]
	}
	if len(r.Hosts) > MaxHostRows {
		r.Hosts = r.Hosts[:MaxHostRows]
	}
	if r.Hosts == nil {
		r.Hosts = []Host{}
	}
	if r.Graph.Nodes == nil {
		r.Graph.Nodes, r.Graph.Edges = []Node{}, []Edge{}
	}
	for _, p := range a.ports {
		r.Ports = append(r.Ports, *p)
	}
	sort.Slice(r.Ports, func(i, j int) bool {
		if r.Ports[i].Bytes != r.Ports[j].Bytes {
			return r.Ports[i].Bytes > r.Ports[j].Bytes
		}
		return r.Ports[i].Port < r.Ports[j].Port
	})
	if r.Ports == nil {
		r.Ports = []Port{}
	}
}

func (a *Analyzer) flowsSection(r *Result) {
	sort.Slice(a.flows, func(i, j int) bool {
		if a.flows[i].Bytes != a.flows[j].Bytes {
			return a.flows[i].Bytes > a.flows[j].Bytes
		}
		return a.flows[i].Stream < a.flows[j].Stream
	})
	rows := a.flows
	if len(rows) > a.opts.MaxFlowRows {
		rows = rows[:a.opts.MaxFlowRows]
	}
	r.Flows = FlowTable{Total: a.flowCount, ByState: a.flowStates, ByProto: a.flowProtos, Rows: rows, Dropped: a.flowCount - len(rows)}
	if r.Flows.Rows == nil {
		r.Flows.Rows = []Flow{}
	}
}

// kmeans clusters the distinct (frame length, TCP payload length) points
// of the TCP frames, weighted by their counts: exactly the result of
// clustering every frame, as the seed did, at the cost of the distinct points.
func (a *Analyzer) kmeans() *KMeansResult {
	if len(a.kpts) == 0 {
		return nil
	}
	type pt struct {
		k [2]int32
		p *kpoint
	}
	pts := make([]pt, 0, len(a.kpts))
	for k, p := range a.kpts {
		pts = append(pts, pt{k, p})
	}
	sort.Slice(pts, func(i, j int) bool {
		if pts[i].k[0] != pts[j].k[0] {
			return pts[i].k[0] < pts[j].k[0]
		}
		return pts[i].k[1] < pts[j].k[1]
	})
	data := cluster.Data{D: 2, X: make([]float64, 0, 2*len(pts)), Weights: make([]float64, 0, len(pts))}
	var total int64
	for _, p := range pts {
		data.X = append(data.X, float64(p.k[0]), float64(p.k[1]))
		data.Weights = append(data.Weights, float64(p.p.count))
		total += p.p.count
	}
	sc := cluster.FitScaler(data)
	z := sc.Transform(data)
	ar, err := cluster.Auto(z, a.opts.KMin, a.opts.KMax, 2000, cluster.Options{NInit: 10, Seed: a.opts.Seed})
	if err != nil {
		return nil
	}
	res := &KMeansResult{Features: []string{"frame.len", "tcp.len"}, K: ar.K, Why: ar.Why, Curve: ar.Curve, Inertia: ar.Inertia,
		Scaler: sc, Frames: total}
	for j := 0; j < ar.K; j++ {
		c := sc.Inverse(ar.Centers[j])
		for i, v := range c {
			// Standardising and back leaves rounding noise (1e-16) where
			// every member has the same value, such as no payload: snap it.
			if math.Abs(v) < 1e-9*max(1, sc.Std[i]) {
				c[i] = 0
			}
		}
		res.Centroids = append(res.Centroids, c)
		res.Sizes = append(res.Sizes, int64(math.Round(ar.Sizes[j])))
	}
	for j := 0; j < ar.K; j++ {
		res.Readings = append(res.Readings, reading(res.Centroids[j], res.Sizes[j], total))
	}
	for i, p := range pts {
		kp := KPoint{X: []float64{float64(p.k[0]), float64(p.k[1])}, Count: p.p.count, Cluster: int(ar.Labels[i]), Score: ar.Dist[i]}
		if len(res.Points) < MaxKPoints {
			res.Points = append(res.Points, kp)
		}
		if ar.Dist[i] > a.opts.OutlierDistance && float64(p.p.count) <= a.opts.OutlierShare*float64(total) {
			res.Outliers = append(res.Outliers, KOutlier{X: kp.X, Count: kp.Count, Cluster: kp.Cluster, Score: ar.Dist[i],
				FirstFrame: p.p.firstFrame, Time: float64(p.p.firstTS-a.start) / 1e9})
		}
	}
	sort.Slice(res.Outliers, func(i, j int) bool { return res.Outliers[i].Score > res.Outliers[j].Score })
	if len(res.Outliers) > 50 {
		res.Outliers = res.Outliers[:50]
	}
	if res.Outliers == nil {
		res.Outliers = []KOutlier{}
	}
	return res
}

// reading describes a cluster in plain words.
func reading(c []float64, size, total int64) string {
	flen, tlen := c[0], c[1]
	var what string
	switch {
	case tlen < 1:
		what = "TCP handshakes and acknowledgements without payload"
	case tlen < 24:
		what = "short MQTT messages: sensor readings, acknowledgements, pings"
	case tlen < 200:
		what = "medium messages: connects, long topics or payloads, several packets in one segment"
	default:
		what = "large segments: bursts of packets, bulk payloads or floods"
	}
	return fmt.Sprintf("frames of about %.0f bytes carrying about %.0f bytes of TCP payload (%s of frames): %s",
		flen, tlen, fmtPct(size, total), what)
}

// model fits the ARIMA model to the packets-per-interval series, forecasts
// the next Horizon intervals and flags anomalies over the whole series.
func (a *Analyzer) model(r *Result) {
	y := a.packets.Values
	r.Series = SeriesResult{Interval: a.opts.Interval.String(), IntervalSeconds: a.opts.Interval.Seconds(), Metric: "packets", Start: time.Unix(0, a.packets.Start()).UTC(),
		Values: y, MQTT: a.mqttSeries.Values}
	if r.Series.Values == nil {
		r.Series.Values, r.Series.MQTT = []float64{}, []float64{}
	}
	if len(y) < 10 {
		r.Forecast = &ForecastResult{Error: fmt.Sprintf("the series has %d intervals: too short to model (at least 10 are needed)", len(y))}
		r.Anomalies.NotJudged = r.Forecast.Error
		return
	}
	start := max(0, len(y)-a.opts.FitWindow)
	win := y[start:]
	m, sel, err := forecast.Auto(win, forecast.AutoOptions{MaxP: a.opts.MaxPQ, MaxQ: a.opts.MaxPQ})
	if err != nil {
		r.Forecast = &ForecastResult{Error: err.Error()}
		return
	}
	fc := m.Forecast(a.opts.Horizon, 0.95)
	f := &ForecastResult{Order: [3]int{m.Order.P, m.Order.D, m.Order.Q}, Why: sel.Why, Params: map[string]float64{}, ParamNames: m.Names,
		LogLike: m.LogLike, AIC: m.AIC, AICc: m.AICc, BIC: m.BIC, FittedOn: len(win), FitStart: start, Horizon: a.opts.Horizon,
		Mean: fc.Mean, Lower: fc.Lower, Upper: fc.Upper, Level: fc.Level}
	for i, n := range m.Names {
		f.Params[n] = m.Params[i]
	}
	if start > 0 {
		f.Why += fmt.Sprintf("; fitted to the last %d of %d intervals", len(win), len(y))
	}
	pred, _ := m.InSample()
	f.Fitted = make([]float64, len(pred))
	for i, v := range pred {
		if math.IsNaN(v) {
			v = win[i]
		}
		f.Fitted[i] = v
	}
	if res := m.Residuals(); len(res) > 12 && m.Sigma2 > 0 {
		lb := forecast.LjungBox(res, min(10, len(res)/5), m.Order.P+m.Order.Q)
		if !math.IsNaN(lb.PValue) {
			f.LjungBox = &lb
		}
	}
	r.Forecast = f
	whole := m
	if start > 0 {
		if w, err := m.Apply(y); err == nil {
			whole = w
		}
	}
	if why := a.unmodelable(y); why != "" {
		r.Anomalies.NotJudged = why
		return
	}
	// Sized at once: a long capture can flag hundreds of thousands of
	// intervals, and growing by appends doubled analyze's peak on a 2 GB one.
	list := whole.Anomalies(forecast.AnomalyOptions{Level: a.opts.AnomalyLevel, RobustZ: a.opts.RobustZ})
	r.Anomalies.Series = make([]SeriesAnomaly, len(list))
	for i, an := range list {
		r.Anomalies.Series[i] = SeriesAnomaly{Anomaly: an, Time: float64(an.Index) * a.opts.Interval.Seconds()}
	}
	r.Anomalies.Episodes = Episodes(r.Anomalies.Series, a.opts.Interval.Seconds())
}

// unmodelable says why a series is too thin for its anomalies to be judged
// ("" when it is not): fewer than ModelMinIntervals intervals, a mean
// below ModelMinMean per interval, or traffic in less than ModelMinActive
// of the intervals. A model fitted to mostly empty intervals predicts
// zero, and every frame then looks like an anomaly (9 frames over 340 s
// gave a "z 44" finding before this check). The forecast itself is still
// shown.
func (a *Analyzer) unmodelable(y []float64) string {
	o := a.opts
	if len(y) < o.ModelMinIntervals {
		return fmt.Sprintf("the series has %d intervals of %s: too short to judge anomalies on (at least %d are needed)", len(y), o.Interval, o.ModelMinIntervals)
	}
	var sum float64
	active := 0
	for _, v := range y {
		sum += v
		if v > 0 {
			active++
		}
	}
	mean, share := sum/float64(len(y)), float64(active)/float64(len(y))
	if mean < o.ModelMinMean || share < o.ModelMinActive {
		return fmt.Sprintf("the series is too sparse to judge anomalies on at %s: %.2g %s per interval on average (at least %g needed), traffic in %d of %d intervals (%.0f %%, at least %.0f %% needed); a longer --interval gathers more per interval",
			o.Interval, mean, "packets", o.ModelMinMean, active, len(y), 100*share, 100*o.ModelMinActive)
	}
	return ""
}

// keepStrongest counts the anomalies, then keeps the strongest
// MaxAnomalyIntervals intervals and MaxEpisodes episodes, in time order:
// a 2 GB capture flagged 537,951 intervals, a 106 MB section of
// analysis.json and a third of analyze's peak memory.
func (an *Anomalies) keepStrongest() {
	an.SeriesTotal, an.EpisodesTotal = len(an.Series), len(an.Episodes)
	if len(an.Series) > MaxAnomalyIntervals {
		// Ranked by position, not by copies of the anomalies: a 2 GB
		// capture flagged 460,000 intervals, and a sorted clone of them was
		// 37 MB at analyze's peak.
		idx := make([]int32, len(an.Series))
		for i := range idx {
			idx[i] = int32(i)
		}
		slices.SortFunc(idx, func(i, j int32) int {
			if c := cmp.Compare(math.Abs(an.Series[j].Score), math.Abs(an.Series[i].Score)); c != 0 {
				return c
			}
			return cmp.Compare(i, j) // the earlier first among equals
		})
		idx = idx[:MaxAnomalyIntervals]
		slices.Sort(idx) // back in time order
		s := make([]SeriesAnomaly, len(idx))
		for k, i := range idx {
			s[k] = an.Series[i]
		}
		an.Series = s
	}
	if len(an.Episodes) > MaxEpisodes {
		e := slices.Clone(an.Episodes)
		slices.SortStableFunc(e, func(a, b Episode) int { return cmp.Compare(b.MaxScore, a.MaxScore) })
		e = e[:MaxEpisodes]
		slices.SortFunc(e, func(a, b Episode) int { return cmp.Compare(a.Start, b.Start) })
		an.Episodes = e
	}
}

// EpisodeGap is the largest gap, in intervals, inside one episode.
const EpisodeGap = 2

// Episodes groups anomalies (in time order) into episodes.
func Episodes(an []SeriesAnomaly, interval float64) []Episode {
	out := []Episode{}
	for i, a := range an {
		dev := math.Abs(a.Observed - a.Expected)
		if i == 0 || a.Index-an[i-1].Index > EpisodeGap+1 {
			out = append(out, Episode{Start: a.Time, Peak: a.Observed, Expected: a.Expected, Above: a.Observed > a.Expected})
		}
		e := &out[len(out)-1]
		e.End = a.Time + interval
		e.Points++
		if dev > math.Abs(e.Peak-e.Expected) {
			e.Peak, e.Expected, e.Above = a.Observed, a.Expected, a.Observed > a.Expected
		}
		e.MaxScore = max(e.MaxScore, math.Abs(a.Score))
		e.Strong = e.Strong || strings.HasPrefix(a.Reason, "interval")
	}
	return out
}
