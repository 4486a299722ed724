package analysis

import (
	"time"

	"github.com/iomtguard/iomtguard/internal/cluster"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/forecast"
	"github.com/iomtguard/iomtguard/internal/inventory"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/stats"
)

// Result is everything an analysis found: what the report renders and
// analysis.json holds. Renderers never recompute it.
type Result struct {
	Tool      string                  `json:"tool"`
	Generated time.Time               `json:"generated"`
	Inputs    []pipeline.InputSummary `json:"inputs"`
	Warnings  []string                `json:"warnings"`
	Overview  Overview                `json:"overview"`
	// Describe is pandas' describe() of each field over the frames that have
	// it, as of tshark's field export of the capture (tshark's names).
	Describe map[string]stats.Summary `json:"describe"`
	// DescribeMQTT is the same over the frames carrying MQTT only: the view of
	// the released dataset files (exported with tshark -Y mqtt), whose
	// Figure 1 the seed shows.
	DescribeMQTT  map[string]stats.Summary `json:"describe_mqtt"`
	DescribeOrder []string                 `json:"describe_fields"`
	MQTT          MQTTResult               `json:"mqtt"`
	Topics        []Topic                  `json:"topics"`
	Hosts         []Host                   `json:"hosts"`
	Ports         []Port                   `json:"ports"`
	Flows         FlowTable                `json:"flows"`
	TLS           TLSResult                `json:"tls"`
	Graph         Graph                    `json:"graph"`
	KMeans        *KMeansResult            `json:"kmeans"`
	Series        SeriesResult             `json:"series"`
	Forecast      *ForecastResult          `json:"forecast"`
	Anomalies     Anomalies                `json:"anomalies"`
	Findings      []detect.Finding         `json:"findings"`
	// Inventory is every device, from what it did (filled by the caller
	// that ran an inventory.Inventory beside the analyzer).
	Inventory []inventory.Device `json:"inventory,omitempty"`
	Timings   map[string]float64 `json:"timings_seconds"`
}

// Overview is section 1 of the report.
type Overview struct {
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	SpanSeconds float64   `json:"span_seconds"`
	Frames      int64     `json:"frames"`
	Bytes       int64     `json:"bytes"`
	Hosts       int       `json:"hosts"`
	// HostsEstimated: the host table was full, and Hosts is estimated
	// (within about 1 %, stats.DistinctError) from every address that
	// reached it. The host and conversation tables let go the entries with
	// the least traffic and refuse newcomers with less than those (a flood
	// from spoofed addresses), counted here; the hosts and the graph show
	// the others.
	HostsEstimated       bool  `json:"hosts_estimated,omitempty"`
	HostsEvicted         int64 `json:"hosts_evicted,omitempty"`
	HostsRefused         int64 `json:"hosts_refused,omitempty"`
	ConversationsEvicted int64 `json:"conversations_evicted,omitempty"`
	ConversationsRefused int64 `json:"conversations_refused,omitempty"`
	MQTTClients          int   `json:"mqtt_clients"`                     // distinct client IDs (cleartext MQTT)
	MQTTClientsEstimated bool  `json:"mqtt_clients_estimated,omitempty"` // more than MaxHosts: estimated (stats.DistinctError)
	// MQTTTLSClients counts the addresses of MQTT-over-TLS clients, whose
	// client IDs the capture cannot show.
	MQTTTLSClients int              `json:"mqtt_over_tls_clients"`
	Brokers        []string         `json:"brokers"`
	Versions       map[string]int   `json:"mqtt_versions"` // connections by protocol level
	TCPStreams     int              `json:"tcp_streams"`
	MQTTConns      int              `json:"mqtt_connections"`
	TLSConns       int              `json:"tls_connections"`
	MQTTOverTLS    int              `json:"mqtt_over_tls_connections"` // TLS on an MQTT port or with ALPN mqtt
	Cleartext      int              `json:"cleartext_mqtt_connections"`
	WebSocket      int              `json:"mqtt_over_websocket_connections"` // of the cleartext ones, inside WebSocket
	MQTTPackets    int64            `json:"mqtt_packets"`
	IPv4           int64            `json:"ipv4_frames"`
	IPv6           int64            `json:"ipv6_frames"`
	TCP            int64            `json:"tcp_frames"`
	UDP            int64            `json:"udp_frames"`
	LinkTypes      map[string]int64 `json:"link_types"`
	Decoded        map[string]int64 `json:"decode_status"`
	Gaps           int64            `json:"tcp_gaps"`
	FromCSV        bool             `json:"from_dataset_csv"`
}

// MQTTResult is section 3.
type MQTTResult struct {
	MsgTypes     map[string]int64 `json:"msgtypes"`      // keyed by numeric type, as tshark's mqtt.msgtype
	MsgTypeNames map[string]int64 `json:"msgtype_names"` // the same keyed by name
	Lengths      []Count          `json:"lengths"`       // remaining length (mqtt.len) -> packets
	QoS          map[string]int64 `json:"qos"`           // PUBLISH by QoS
	Retained     int64            `json:"retained_publishes"`
	Anomalies    map[string]int64 `json:"anomalies"`
	Publishes    int64            `json:"publishes"`
	PayloadBytes int64            `json:"payload_bytes"`
	// When there were more topics than the topic table holds: about how
	// many there were (estimated, stats.DistinctError), the ones let go
	// (the fewest publishes) and refused, and the publishes of the topics
	// not listed.
	TopicsEstimate      int   `json:"topics_estimate,omitempty"`
	TopicsEvicted       int64 `json:"topics_evicted,omitempty"`
	TopicsRefused       int64 `json:"topics_refused,omitempty"`
	OtherTopicPublishes int64 `json:"other_topic_publishes,omitempty"`
}

// Count is a value with how often it was seen.
type Count struct {
	Value int64 `json:"value"`
	Count int64 `json:"count"`
}

// Topic is one topic with the clients publishing and subscribing to it.
type Topic struct {
	Topic       string   `json:"topic"`
	Publishes   int64    `json:"publishes"`
	Bytes       int64    `json:"payload_bytes"`
	Retained    int64    `json:"retained"`
	QoS         [3]int64 `json:"qos"`
	Publishers  []string `json:"publishers"`
	Subscribers []string `json:"subscribers"`
	First, Last float64  `json:"-"`
}

// Host is one IP address.
type Host struct {
	Addr      string   `json:"addr"`
	Role      string   `json:"role"` // broker, publisher, subscriber, publisher+subscriber, client, other
	Frames    int64    `json:"frames"`
	Bytes     int64    `json:"bytes"`
	SentBytes int64    `json:"sent_bytes"`
	RecvBytes int64    `json:"recv_bytes"`
	ClientIDs []string `json:"client_ids,omitempty"`
	Peers     int      `json:"peers"`
}

// Port is a server port and what uses it.
type Port struct {
	Port    uint16 `json:"port"`
	Proto   string `json:"proto"` // tcp or udp
	Service string `json:"service"`
	Flows   int64  `json:"flows"`
	Packets int64  `json:"packets"`
	Bytes   int64  `json:"bytes"`
}

// Flow is one TCP connection.
type Flow struct {
	Stream   int     `json:"stream"`
	Client   string  `json:"client"`
	Server   string  `json:"server"`
	Start    float64 `json:"start"` // seconds from the capture's start
	Duration float64 `json:"duration"`
	Packets  int64   `json:"packets"`
	Bytes    int64   `json:"bytes"`
	Proto    string  `json:"proto"`
	State    string  `json:"state"`
	Closed   string  `json:"closed_by"`
	Flags    string  `json:"flags"`
	ClientID string  `json:"client_id,omitempty"`
	MQTTPkts int64   `json:"mqtt_packets,omitempty"`
}

// FlowTable is section 4's flow table.
type FlowTable struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"by_state"`
	ByProto map[string]int `json:"by_proto"`
	Rows    []Flow         `json:"rows"` // the largest flows (by bytes), up to MaxFlowRows
	Dropped int            `json:"rows_dropped"`
}

// Graph is the IP communication graph (section 6).
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node is a host in the graph.
type Node struct {
	ID    string `json:"id"`
	Role  string `json:"role"`
	Bytes int64  `json:"bytes"`
}

// Edge joins two hosts that talked.
type Edge struct {
	A       string `json:"a"`
	B       string `json:"b"`
	Packets int64  `json:"packets"`
	Bytes   int64  `json:"bytes"`
	Flows   int64  `json:"flows"`
}

// KMeansResult is section 5.
type KMeansResult struct {
	Features  []string         `json:"features"`
	K         int              `json:"k"`
	Why       string           `json:"why"`
	Curve     []cluster.Choice `json:"curve"`
	Centroids [][]float64      `json:"centroids"` // original units
	Sizes     []int64          `json:"sizes"`     // frames per cluster
	Inertia   float64          `json:"inertia"`   // in standardised units
	Readings  []string         `json:"readings"`  // each cluster in plain words
	Points    []KPoint         `json:"points"`    // distinct points with counts (up to MaxKPoints)
	Outliers  []KOutlier       `json:"outliers"`
	Scaler    cluster.Scaler   `json:"scaler"`
	Frames    int64            `json:"frames"`
}

// KPoint is a distinct feature vector with its frame count.
type KPoint struct {
	X       []float64 `json:"x"`
	Count   int64     `json:"count"`
	Cluster int       `json:"cluster"`
	Score   float64   `json:"distance"` // standardised distance to its centroid
}

// KOutlier is a rare point far from its centroid.
type KOutlier struct {
	X          []float64 `json:"x"`
	Count      int64     `json:"count"`
	Cluster    int       `json:"cluster"`
	Score      float64   `json:"score"`
	FirstFrame int       `json:"first_frame"`
	Time       float64   `json:"time"` // seconds from the capture's start
}

// SeriesResult is the traffic series the models read.
type SeriesResult struct {
	Interval        string    `json:"interval"`
	IntervalSeconds float64   `json:"interval_seconds"`
	Metric          string    `json:"metric"`
	Start           time.Time `json:"start"`
	Values          []float64 `json:"values"`
	MQTT            []float64 `json:"mqtt_values"`
}

// ForecastResult is section 7.
type ForecastResult struct {
	Order      [3]int                   `json:"order"`
	Why        string                   `json:"why"`
	Params     map[string]float64       `json:"params"`
	ParamNames []string                 `json:"param_names"`
	LogLike    float64                  `json:"loglike"`
	AIC        float64                  `json:"aic"`
	AICc       float64                  `json:"aicc"`
	BIC        float64                  `json:"bic"`
	FittedOn   int                      `json:"fitted_on"` // last points of the series used to fit
	FitStart   int                      `json:"fit_start"` // index of the first of them
	Horizon    int                      `json:"horizon"`
	Mean       []float64                `json:"mean"`
	Lower      []float64                `json:"lower"`
	Upper      []float64                `json:"upper"`
	Level      float64                  `json:"level"`
	LjungBox   *forecast.LjungBoxResult `json:"ljung_box,omitempty"`
	Fitted     []float64                `json:"fitted"` // one-step predictions over the fitted window
	Error      string                   `json:"error,omitempty"`
}

// Anomalies is section 8.
type Anomalies struct {
	Series   []SeriesAnomaly `json:"series"`
	Episodes []Episode       `json:"episodes"`
	KMeans   []KOutlier      `json:"kmeans_outliers"`
	Level    float64         `json:"interval_level"`
	RobustZ  float64         `json:"robust_z"`
	// NotJudged says why the series' anomalies were not judged (a series
	// too short or too sparse for the model to stand on), "" when they were.
	NotJudged string `json:"not_judged,omitempty"`
	// SeriesTotal and EpisodesTotal count every anomalous interval and
	// episode; Series and Episodes keep the MaxAnomalyIntervals and
	// MaxEpisodes strongest of them, in time order (a long capture can
	// flag hundreds of thousands of intervals; the findings see them all).
	SeriesTotal   int `json:"series_total"`
	EpisodesTotal int `json:"episodes_total"`
}

// The most anomalous intervals and episodes a Result keeps.
const (
	MaxAnomalyIntervals = 5000
	MaxEpisodes         = 1000
)

// SeriesAnomaly is an anomalous interval of the traffic series.
type SeriesAnomaly struct {
	forecast.Anomaly
	Time float64 `json:"time"` // seconds from the capture's start
}

// Episode groups anomalous intervals no more than EpisodeGap intervals
// apart: one event (an attack's start, a burst) reads as one line.
type Episode struct {
	Start    float64 `json:"start"` // seconds from the capture's start
	End      float64 `json:"end"`   // end of the last anomalous interval
	Points   int     `json:"points"`
	Peak     float64 `json:"peak"`      // the observed value farthest from its expectation
	Expected float64 `json:"expected"`  // the expectation at that point
	MaxScore float64 `json:"max_score"` // largest |robust z|
	Above    bool    `json:"above"`     // the peak is above the expectation
	Strong   bool    `json:"strong"`    // at least one point is outside the prediction interval
}
