package hub_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/hub"
	"github.com/iomtguard/iomtguard/internal/pipeline"
	"github.com/iomtguard/iomtguard/internal/source"
	"github.com/iomtguard/iomtguard/internal/watch"
)

// sharedCaptures returns the shared captures named, or skips.
func sharedCaptures(t *testing.T, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		p := filepath.Join("..", "..", "..", "shared", "data", "captures", n)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs ../shared/data/captures/%s (the shared data beside the repository): %v", n, err)
		}
		out = append(out, p)
	}
	return out
}

// sensorRun replays a capture through watch with a sensor linked to url,
// and returns the sensor's counters once it has delivered everything.
func sensorRun(t *testing.T, o hub.SensorOptions, path string) hub.SensorStats {
	return sensorRunAt(t, o, path, 0)
}

// sensorRunAt is sensorRun at speed times real time (0: as fast as it
// can).
func sensorRunAt(t *testing.T, o hub.SensorOptions, path string, speed float64) hub.SensorStats {
	st, _ := runSensor(t, o, path, speed)
	return st
}

// runSensor is sensorRunAt that also returns the sensor's watch (its own
// incidents, once run).
func runSensor(t *testing.T, o hub.SensorOptions, path string, speed float64) (hub.SensorStats, *watch.Watch) {
	t.Helper()
	o.Patient = true
	s, err := hub.NewSensor(o)
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.Replay(path, speed, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	w, err := watch.New(watch.Options{Input: src, Stats: src.Stats(), SourceKind: "replay", Name: hub.Source(o.Site, o.Sensor), Uplink: s})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return s.Stats(), w
}

// analyzeEach is analyze of each capture, merged in time order (as a hub
// merges its sensors' minutes), and the findings analyze gives for each.
func analyzeEach(t *testing.T, opts analysis.Options, paths ...string) (*analysis.Result, map[string]bool) {
	t.Helper()
	ids := map[string]bool{}
	var states []*analysis.State
	for _, p := range paths {
		in, err := pipeline.OpenInput(p)
		if err != nil {
			t.Fatal(err)
		}
		a := analysis.New(opts)
		det, _ := detect.New(nil)
		sum, err := pipeline.New(pipeline.Options{}, a, det).Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, a.State())
		for _, f := range a.Result(sum, det.Findings).Findings {
			ids[f.ID] = true
		}
	}
	sort.Slice(states, func(i, j int) bool { return states[i].First < states[j].First })
	all := analysis.New(opts)
	for _, st := range states {
		all.Merge(st)
	}
	return all.Result(all.OwnSummary(), nil), ids
}

// waitDrained waits until the hub has stored and acknowledged everything.
func waitDrained(t *testing.T, h *hub.Hub) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if h.Pending(context.Background()) == 0 {
			if err := h.DB().Sync(); err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the hub did not catch up: %d pending, %+v", h.Pending(context.Background()), h.Stats())
}

// compareWithAnalyze checks the hub's group-wide report against analyze of
// each capture merged: frames, bytes, MQTT packets by type, topics, hosts,
// Figure 1 exactly, and the findings.
func compareWithAnalyze(t *testing.T, h *hub.Hub, paths ...string) {
	t.Helper()
	fixed := func() time.Time { return time.Unix(0, 0) }
	got, err := watch.Report(h.DB(), "", 0, analysis.Options{Now: fixed})
	if err != nil {
		t.Fatal(err)
	}
	want, wantIDs := analyzeEach(t, analysis.Options{Now: fixed}, paths...)
	if got.Overview.Frames != want.Overview.Frames || got.Overview.Bytes != want.Overview.Bytes || got.Overview.MQTTPackets != want.Overview.MQTTPackets {
		t.Errorf("overview: hub %+v\nanalyze %+v", got.Overview, want.Overview)
	}
	for k, v := range want.MQTT.MsgTypes {
		if got.MQTT.MsgTypes[k] != v {
			t.Errorf("MQTT type %s: hub %d, analyze %d", k, got.MQTT.MsgTypes[k], v)
		}
	}
	if len(got.Topics) != len(want.Topics) || len(got.Hosts) != len(want.Hosts) {
		t.Errorf("topics %d/%d, hosts %d/%d (hub/analyze)", len(got.Topics), len(want.Topics), len(got.Hosts), len(want.Hosts))
	}
	for _, f := range want.DescribeOrder {
		if g, w := got.Describe[f], want.Describe[f]; g != w {
			t.Errorf("describe %s: hub %+v, analyze %+v", f, g, w)
		}
		if g, w := got.DescribeMQTT[f], want.DescribeMQTT[f]; g != w {
			t.Errorf("describe_mqtt %s: hub %+v, analyze %+v", f, g, w)
		}
	}
	gotIDs := map[string]bool{}
	for _, f := range got.Findings {
		gotIDs[f.ID] = true
	}
	if a, b := keys(gotIDs), keys(wantIDs); !equal(a, b) {
		t.Errorf("findings: hub %v, analyze %v", a, b)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestHubEqualsAnalyze: three sensors at two sites replay three captures
// into a hub with its embedded NATS; the hub's group-wide report equals
// analyze of the three captures, and every minute each sensor numbered is
// stored once.
func TestHubEqualsAnalyze(t *testing.T) {
	paths := sharedCaptures(t, "benign.pcap", "bruteforce.pcapng", "flood.pcap")
	h, err := hub.Start(hub.Options{Data: t.TempDir(), Listen: "127.0.0.1:0", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	names := [][2]string{{"icu", "s1"}, {"icu", "s2"}, {"ward4", "s1"}}
	sent := map[string]int64{}
	for i, p := range paths {
		st := sensorRun(t, hub.SensorOptions{URL: h.URL(), Site: names[i][0], Sensor: names[i][1]}, p)
		if st.Dropped != 0 || st.Published != st.Minutes+st.Events {
			t.Errorf("sensor %v: %+v", names[i], st)
		}
		sent[hub.Source(names[i][0], names[i][1])] = st.Minutes
	}
	waitDrained(t, h)
	runs, err := h.DB().Intervals()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("runs: %+v", runs)
	}
	for _, r := range runs {
		if r.Sent != r.Stored || r.Sent != sent[r.Source] {
			t.Errorf("%s: the sensor sent %d minutes, numbered up to %d, the hub stored %d", r.Source, sent[r.Source], r.Sent, r.Stored)
		}
	}
	compareWithAnalyze(t, h, paths...)
	t.Logf("hub: %+v; runs %+v", h.Stats(), runs)
}

// startCluster starts an n-node NATS cluster with JetStream in this
// process, on loopback, and returns its servers and client URLs.
func startCluster(t *testing.T, n int) ([]*server.Server, string) {
	t.Helper()
	ports := make([]int, 2*n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var srvs []*server.Server
	var urls []string
	for i := 0; i < n; i++ {
		var routes []*url.URL
		for j := 0; j < n; j++ {
			if j != i {
				routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[n+j])})
			}
		}
		s, err := server.NewServer(&server.Options{ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: ports[i],
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true, MaxPayload: hub.DefaultMaxPayload,
			Cluster: server.ClusterOpts{Name: "iomtguard", Host: "127.0.0.1", Port: ports[n+i]}, Routes: routes})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		srvs = append(srvs, s)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for _, s := range srvs {
		if !s.ReadyForConnections(15 * time.Second) {
			t.Fatal("a NATS node did not start")
		}
	}
	return srvs, strings.Join(urls, ",")
}

// TestHubClusterFailover: a three-node JetStream cluster, three sensors,
// two hubs. While the sensors run (at once, paced), one NATS node and one
// hub die; the sensors carry on with the surviving nodes. The surviving hub's
// group-wide report equals analyze of the three captures, every minute
// accounted for; the dead hub, restarted with its name and data, carries
// on from the stream to the same result.
func TestHubClusterFailover(t *testing.T) {
	paths := sharedCaptures(t, "benign.pcap", "bruteforce.pcapng", "flood.pcap")
	nodes, urls := startCluster(t, 3)
	dataB := t.TempDir()
	ha, err := hub.Start(hub.Options{Data: t.TempDir(), NATS: urls, Name: "a", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := hub.Start(hub.Options{Data: dataB, NATS: urls, Name: "b", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	names := [][2]string{{"icu", "s1"}, {"icu", "s2"}, {"ward4", "s1"}}
	sent := map[string]int64{}
	// The three sensors run at once, paced to last about five seconds each
	// (the captures span 548, 1929 and 24 seconds); a NATS node and hub b die
	// two seconds in.
	speeds := []float64{110, 385, 5}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Connected to the node that dies: the sensor must find the
			// others (the cluster tells its clients of them).
			st := sensorRunAt(t, hub.SensorOptions{URL: strings.Split(urls, ",")[0], Site: names[i][0], Sensor: names[i][1]}, p, speeds[i])
			if st.Dropped != 0 || st.Published != st.Minutes+st.Events {
				t.Errorf("sensor %v: %+v", names[i], st)
			}
			mu.Lock()
			sent[hub.Source(names[i][0], names[i][1])] = st.Minutes
			mu.Unlock()
			t.Logf("sensor %v: %d minutes, %d events, %d reconnections, %d failed attempts", names[i], st.Minutes, st.Events, st.Reconnects, st.Unreachable)
			if st.Reconnects == 0 {
				t.Errorf("sensor %v did not reconnect: did its node die?", names[i])
			}
		}()
	}
	time.Sleep(2 * time.Second)
	nodes[0].Shutdown()
	nodes[0].WaitForShutdown()
	hb.Close()
	wg.Wait()
	check := func(name string, h *hub.Hub) {
		waitDrained(t, h)
		runs, err := h.DB().Intervals()
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 3 {
			t.Fatalf("hub %s: runs %+v", name, runs)
		}
		for _, r := range runs {
			if r.Sent != r.Stored || r.Sent != sent[r.Source] {
				t.Errorf("hub %s, %s: the sensor sent %d minutes, numbered up to %d, the hub stored %d", name, r.Source, sent[r.Source], r.Sent, r.Stored)
			}
		}
		compareWithAnalyze(t, h, paths...)
		t.Logf("hub %s: %+v", name, h.Stats())
	}
	check("a", ha)
	hb, err = hub.Start(hub.Options{Data: dataB, NATS: urls, Name: "b", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	check("b (restarted)", hb)
}
