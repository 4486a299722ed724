package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// LiveOptions configure Live: the ICU scenario against a real broker.
type LiveOptions struct {
	Broker   string        // host:port
	Duration time.Duration // default 1 minute
	Beds     int           // default 2
	Scenario string        // icu (default), icu-patient, icu-environment
	Seed     uint64
	// Speed divides every sensor's period (load tests: 100 makes the 2 s
	// sensors publish every 20 ms). Default 1.
	Speed float64
	// TLS, when set, connects with TLS; ClientCert returns each client's
	// certificate by client ID (nil: none).
	TLS        *tls.Config
	ClientCert func(clientID string) (*tls.Certificate, error)
	// Username and Password, when set, are sent by every client (the
	// password is never logged); otherwise clients connect anonymously.
	Username, Password string
	// Progress, when set, is called every second with the counts so far.
	Progress func(LiveStats)
}

// LiveStats counts what a live run did.
type LiveStats struct {
	Clients       int           `json:"clients"`
	Connected     int           `json:"connected"`
	ConnectErrors int           `json:"connect_errors"`
	Published     int64         `json:"published"`
	PublishErrors int64         `json:"publish_errors"`
	Received      int64         `json:"received"` // by the nurse station
	LatencyP50    time.Duration `json:"latency_p50_ns"`
	LatencyP99    time.Duration `json:"latency_p99_ns"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	// Errors are the distinct connect errors with the clients that got
	// each (at most 8 kinds, each with up to 3 client IDs).
	Errors []LiveError `json:"errors,omitempty"`
}

// LiveError is one kind of connect error.
type LiveError struct {
	Error   string   `json:"error"`
	Count   int      `json:"count"`
	Clients []string `json:"clients"`
}

func (s *LiveStats) noteError(client string, err error) {
	msg := err.Error()
	for i := range s.Errors {
		if e := &s.Errors[i]; e.Error == msg {
			e.Count++
			if len(e.Clients) < 3 {
				e.Clients = append(e.Clients, client)
			}
			return
		}
	}
	if len(s.Errors) < 8 {
		s.Errors = append(s.Errors, LiveError{Error: msg, Count: 1, Clients: []string{client}})
	}
}

// Live runs the scenario's devices and nurse station as real MQTT 3.1.1
// clients (Eclipse Paho) against a broker for the duration, and reports
// delivery counts and the publish-to-nurse-station latency.
func Live(ctx context.Context, o LiveOptions) (*LiveStats, error) {
	if o.Broker == "" {
		return nil, fmt.Errorf("%w: no broker", ErrOptions)
	}
	if o.Duration <= 0 {
		o.Duration = time.Minute
	}
	if o.Beds <= 0 {
		o.Beds = 2
	}
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.Scenario == "" {
		o.Scenario = "icu"
	}
	type liveDevice struct {
		id, topic string
		s         sensor
	}
	var devs []liveDevice
	if o.Scenario == "icu" || o.Scenario == "icu-patient" {
		for b := 1; b <= o.Beds; b++ {
			for _, s := range patientSensors {
				devs = append(devs, liveDevice{fmt.Sprintf("bed%d-%s", b, s.topic), fmt.Sprintf("%d/%s", b, s.topic), s})
			}
		}
	}
	if o.Scenario == "icu" || o.Scenario == "icu-environment" {
		for _, s := range environmentSensors {
			devs = append(devs, liveDevice{"env-" + s.topic, s.topic, s})
		}
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("%w: unknown scenario %q", ErrOptions, o.Scenario)
	}
	scheme := "tcp"
	if o.TLS != nil {
		scheme = "ssl"
	}
	newClient := func(id string) (paho.Client, error) {
		opts := paho.NewClientOptions().AddBroker(scheme + "://" + o.Broker).SetClientID(id).SetCleanSession(true).
			SetKeepAlive(60 * time.Second).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second).SetOrderMatters(false).
			SetConnectRetry(false)
		if o.Username != "" {
			opts.SetUsername(o.Username).SetPassword(o.Password)
		}
		if o.TLS != nil {
			cfg := o.TLS.Clone()
			if o.ClientCert != nil {
				c, err := o.ClientCert(id)
				if err != nil {
					return nil, err
				}
				if c != nil {
					cfg.Certificates = []tls.Certificate{*c}
				}
			}
			opts.SetTLSConfig(cfg)
		}
		return paho.NewClient(opts), nil
	}

	st := &LiveStats{Clients: len(devs) + 1}
	var mu sync.Mutex
	sent := map[string][]time.Time{} // per topic, send times not yet received (FIFO)
	var lat []time.Duration

	// The nurse station follows every topic the devices publish.
	nurse, err := newClient("nurse-station")
	if err != nil {
		return nil, err
	}
	if tok := nurse.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("sim: nurse-station cannot connect to %s: %v", o.Broker, tokErr(tok))
	}
	defer nurse.Disconnect(200)
	filters := map[string]byte{}
	for _, d := range devs {
		filters[d.topic] = 1
	}
	if tok := nurse.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
		now := time.Now()
		mu.Lock()
		st.Received++
		if q := sent[m.Topic()]; len(q) > 0 {
			lat = append(lat, now.Sub(q[0]))
			sent[m.Topic()] = q[1:]
		}
		mu.Unlock()
	}); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("sim: nurse-station cannot subscribe: %v", tokErr(tok))
	}
	mu.Lock()
	st.Connected++
	mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	rng := rand.New(rand.NewPCG(o.Seed, 0x1c0))
	// Clients (and their certificates) are made one after the other: a
	// certificate authority's files are not for concurrent issuing.
	clients := make([]paho.Client, len(devs))
	clientErr := make([]error, len(devs))
	for i, d := range devs {
		clients[i], clientErr[i] = newClient(d.id)
	}
	for i, d := range devs {
		seed := rng.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 7))
			c, err := clients[i], clientErr[i]
			if err == nil {
				if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
					err = tokErr(tok)
				}
			}
			mu.Lock()
			if err != nil {
				st.ConnectErrors++
				st.noteError(d.id, err)
				mu.Unlock()
				return
			}
			st.Connected++
			mu.Unlock()
			defer c.Disconnect(200)
			period := time.Duration(float64(d.s.period) / o.Speed)
			v := d.s.lo + (d.s.hi-d.s.lo)*(0.4+0.2*r.Float64())
			t := time.NewTimer(time.Duration(r.Int64N(int64(min(period, 2*time.Second)) + 1)))
			defer t.Stop()
			// The run's end waits for this device's publishes still in
			// flight before it disconnects: a QoS 1 PUBACK on its way
			// back when the connection closes would count as a failed
			// publish (CI saw 1 of 42 so, with the broker's PUBACK
			// already in its log).
			var inflight sync.WaitGroup
			for {
				select {
				case <-ctx.Done():
					inflight.Wait()
					return
				case <-t.C:
				}
				v = math.Max(d.s.lo, math.Min(d.s.hi, v+(r.Float64()*2-1)*(d.s.hi-d.s.lo)*0.04))
				mu.Lock()
				sent[d.topic] = append(sent[d.topic], time.Now())
				mu.Unlock()
				tok := c.Publish(d.topic, d.s.qos, false, d.s.format(v))
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					done := tok.WaitTimeout(10 * time.Second)
					mu.Lock()
					if !done || tok.Error() != nil { // unanswered in 10 s is a failure, not a success
						st.PublishErrors++
					} else {
						st.Published++
					}
					mu.Unlock()
				}()
				t.Reset(period)
			}
		}()
	}
	if o.Progress != nil {
		go func() {
			tk := time.NewTicker(time.Second)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
					mu.Lock()
					s := *st
					mu.Unlock()
					o.Progress(s)
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // the last deliveries
	mu.Lock()
	defer mu.Unlock()
	st.Elapsed = time.Since(start)
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		st.LatencyP50 = lat[len(lat)/2]
		st.LatencyP99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	switch {
	case st.ConnectErrors > 0:
		first := st.Errors[0]
		return st, fmt.Errorf("sim: %d of %d clients could not connect (%d: %s; e.g. %s)", st.ConnectErrors, st.Clients, first.Count, first.Error, strings.Join(first.Clients, ", "))
	case st.PublishErrors > 0:
		return st, fmt.Errorf("sim: %d of %d publishes failed", st.PublishErrors, st.PublishErrors+st.Published)
	}
	return st, nil
}

func tokErr(t paho.Token) error {
	if t.Error() != nil {
		return t.Error()
	}
	return errors.New("timed out")
}
