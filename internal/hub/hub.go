package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/history"
	"github.com/iomtguard/iomtguard/internal/incident"
)

// Options configure a hub.
type Options struct {
	// Data is the hub's directory: history.db, and nats/ (the embedded
	// server's JetStream store).
	Data string
	// Listen is the embedded NATS server's address (default
	// 127.0.0.1:4222; port 0 picks a free one).
	Listen string
	// NATS is an external NATS server or cluster to use instead of the
	// embedded one: nats://HOST:PORT, several comma-separated.
	NATS string
	// Name names this hub's durable consumer (default: the host name).
	// Hubs with different names each keep a whole history from the same
	// stream; a hub restarted with its name goes on where it stopped.
	Name string
	// Replicas of the stream on an external cluster (default 1).
	Replicas int
	// MaxAge is how long the stream keeps messages (default 7 days): how
	// long a hub may be down and still catch up.
	MaxAge time.Duration
	// Retain is how long the history keeps minutes, closed incidents and
	// devices, counted back from the newest minute (default 90 days).
	Retain time.Duration
	// TLS is the client side (the hub's certificate and the CA) for an
	// external NATS or an embedded server with Security.
	TLS *tls.Config
	// Security, when set, makes the embedded server require TLS and a
	// client certificate, and gives each identity its permissions.
	Security *Security
	Logger   *slog.Logger
}

// Stats are a hub's counters.
type Stats struct {
	Minutes     int64  `json:"minutes"`     // minute messages stored
	Events      int64  `json:"events"`      // event messages stored
	Redelivered int64  `json:"redelivered"` // messages delivered again (a crash or a lost ack; stored once)
	Rejected    int64  `json:"rejected"`    // messages refused (damaged, unknown subject, another version)
	Incidents   int64  `json:"incidents"`   // cross-site incidents opened
	LastError   string `json:"last_error,omitempty"`
}

// Hub consumes every sensor's messages into its history.
type Hub struct {
	o   Options
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	// stream is the handle Pending asks for the stream's state.
	stream jetstream.Stream
	cons   jetstream.Consumer
	db     *history.DB
	url    string

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	minutes, events, redelivered, rejected atomic.Int64
	lastErr                                atomic.Value

	// The cross-site detectors, on the consumer's goroutine.
	group     *detect.Group
	trk       *incident.Tracker
	factsSeen map[string]map[int64]int64 // source -> run -> the last facts event applied (a redelivery is not added twice)
	clocks    clocks                     // how far each sensor's facts have come: the time incidents are judged at
	evalAt    time.Time                  // when the detectors last ran
	pending   bool                       // facts added since
	incidents atomic.Int64

	started    time.Time
	views      viewCache
	retainedAt time.Time
}

// maxInflated bounds what a sensor's minute may inflate to: eight times the
// largest message (a minute near the limit packs about four to one), so a
// gzip bomb costs the hub a bounded moment.
const maxInflated = 8 * DefaultMaxPayload

// fetchBatch is how many messages the hub fetches at a time.
const fetchBatch = 256

// GroupSource is the history's source of the cross-site incidents.
const GroupSource = "group"

// Start opens the history, starts the embedded NATS server (unless
// Options.NATS names one), makes sure the stream exists and starts
// consuming.
func Start(o Options) (*Hub, error) {
	if o.Data == "" {
		return nil, errors.New("hub: a data directory is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	if err := CheckName("hub name", o.Name); err != nil {
		return nil, err
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.Retain <= 0 {
		o.Retain = 90 * 24 * time.Hour
	}
	if err := os.MkdirAll(o.Data, 0o700); err != nil {
		return nil, err
	}
	h := &Hub{o: o, done: make(chan struct{}), started: time.Now().UTC()}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	var err error
	defer func() {
		if err != nil {
			h.shutdown()
		}
	}()
	if o.NATS == "" {
		if h.srv, err = startServer(o); err != nil {
			return nil, err
		}
		h.url = h.srv.ClientURL()
	} else {
		h.url = o.NATS
	}
	dial, tc := h.url, o.TLS
	if h.srv != nil && o.Security != nil && o.TLS != nil {
		// The hub reaches its own server where it listens (loopback when
		// it listens everywhere), naming it as its certificate does.
		if dial, tc, err = selfDial(h.srv, o.Security, o.TLS); err != nil {
			return nil, err
		}
	}
	opts := []nats.Option{nats.Name("iomtguard-hub " + o.Name), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond),
		nats.CustomInboxPrefix(InboxPrefix(HubCertName(o.Name)))}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	if h.nc, err = nats.Connect(dial, opts...); err != nil {
		return nil, fmt.Errorf("hub: NATS %s: %w", dial, err)
	}
	if h.js, err = jetstream.New(h.nc); err != nil {
		return nil, err
	}
	// A cluster that is starting, or electing a leader after losing a
	// node, answers "temporarily unavailable" for a few seconds: retry.
	ctx, cancel := context.WithTimeout(h.ctx, 60*time.Second)
	defer cancel()
	// The stream is created once; a hub that finds it leaves its settings
	// (another hub's --max-age must not be shrunk by this one's).
	err = retry(ctx, func(ctx context.Context) error {
		st, err := h.js.Stream(ctx, Stream)
		if err == nil {
			h.stream = st
			if c := st.CachedInfo().Config; c.MaxAge != o.MaxAge || c.Replicas != o.Replicas {
				o.Logger.Warn("hub: the stream exists with other settings; kept", "max_age", c.MaxAge, "replicas", c.Replicas)
			}
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		h.stream, err = h.js.CreateStream(ctx, jetstream.StreamConfig{Name: Stream, Subjects: []string{SubjectRoot + ".>"},
			Storage: jetstream.FileStorage, Replicas: o.Replicas, MaxAge: o.MaxAge, Duplicates: 10 * time.Minute,
			MaxMsgSize: DefaultMaxPayload, Description: "iomtguard sensors: minutes and events"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hub: stream %s: %w", Stream, err)
	}
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		h.cons, err = h.js.CreateOrUpdateConsumer(ctx, Stream, jetstream.ConsumerConfig{Durable: "hub-" + o.Name,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 4096, Replicas: o.Replicas,
			Description: "iomtguard hub " + o.Name})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hub: consumer: %w", err)
	}
	if h.db, err = history.Open(filepath.Join(o.Data, "history.db")); err != nil {
		return nil, err
	}
	if err = h.restoreGroup(); err != nil {
		return nil, err
	}
	go h.consume()
	if h.srv != nil && o.Security != nil {
		go h.watchRevocations()
	}
	return h, nil
}

// selfDial is the address and TLS configuration with which the hub reaches
// its embedded server: its listening address, or loopback for one that
// listens on every interface, and the server name its certificate holds
// for it (its IP, else its first DNS name).
func selfDial(srv *server.Server, sec *Security, tc *tls.Config) (string, *tls.Config, error) {
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		return "", nil, errors.New("hub: the NATS server has no TCP address")
	}
	ip := addr.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	cert, err := loadCert(filepath.Join(sec.Dir, sec.serverName()+".crt"))
	if err != nil {
		return "", nil, err
	}
	c := tc.Clone()
	for _, cip := range cert.IPAddresses {
		if cip.Equal(ip) {
			c.ServerName = ip.String()
		}
	}
	if c.ServerName == "" && len(cert.DNSNames) > 0 {
		c.ServerName = cert.DNSNames[0]
	}
	if c.ServerName == "" {
		return "", nil, fmt.Errorf("hub: the certificate %s names neither %s nor a host", sec.serverName(), ip)
	}
	return "tls://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port)), c, nil
}

// retry calls fn until it succeeds or ctx ends (the last error then).
func retry(ctx context.Context, fn func(context.Context) error) error {
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(c)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startServer starts the embedded NATS server with JetStream on disk.
func startServer(o Options) (*server.Server, error) {
	addr := o.Listen
	if addr == "" {
		addr = "127.0.0.1:4222"
	}
	host, portS, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("hub: --listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return nil, fmt.Errorf("hub: --listen %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else {
		// The server reports a taken address only in its log: say it here.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("hub: --listen %s: %w", addr, err)
		}
		l.Close()
	}
	so := &server.Options{ServerName: "iomtguard-hub-" + o.Name, Host: host, Port: port, JetStream: true,
		StoreDir: filepath.Join(o.Data, "nats"), NoSigs: true, NoLog: true, MaxPayload: DefaultMaxPayload}
	if o.Security != nil {
		if err := o.Security.apply(so); err != nil {
			return nil, err
		}
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("hub: NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("hub: the NATS server did not start on %s", addr)
	}
	return srv, nil
}

// restoreGroup rebuilds the cross-site detectors from the facts of the
// last hour in the history (the stream may not hold them any more), and
// continues the numbering of the group's incidents.
func (h *Hub) restoreGroup() error {
	h.group, h.factsSeen, h.clocks = detect.NewGroup(), map[string]map[int64]int64{}, clocks{}
	h.trk = incident.New(incident.Options{}, h.db.MaxSensorSeq(GroupSource, 0))
	// The group's incidents go on: open ones are not opened again, closed
	// ones do not reopen on the evidence that closed them.
	ins, err := h.db.SensorIncidents(GroupSource, 0)
	if err != nil {
		return err
	}
	for _, in := range ins {
		h.trk.Restore(in)
	}
	last := h.db.LastFactsMinute()
	if last == 0 {
		return nil
	}
	return h.db.RecentFacts(last-60, func(src string, run, seq int64, js []byte) error {
		var f detect.Facts
		if json.Unmarshal(js, &f) == nil {
			h.addFacts(src, run, seq, &f)
		}
		return nil
	})
}

func (h *Hub) addFacts(src string, run, seq int64, f *detect.Facts) {
	runs := h.factsSeen[src]
	if runs == nil {
		runs = map[int64]int64{}
		h.factsSeen[src] = runs
	}
	if seq <= runs[run] {
		return // a redelivery
	}
	if _, ok := runs[run]; !ok && len(runs) >= 16 {
		// Bounded per sensor (its runs are its restarts): the oldest run goes.
		oldest := run
		for r := range runs {
			oldest = min(oldest, r)
		}
		delete(runs, oldest)
	}
	runs[run] = seq
	h.group.Add(src, f)
	h.clocks.heard(src, f.To, time.Now())
	h.pending = true
}

// evaluate runs the cross-site detectors and stores their incidents,
// judged at the capture time every active sensor has reached (judgeAt).
func (h *Hub) evaluate() {
	h.evalAt, h.pending = time.Now(), false
	at := h.clocks.judgeAt(h.group.Newest(), time.Now())
	if at == 0 {
		return
	}
	now := time.Unix(0, at).UTC()
	evs := h.trk.Observe(now, h.group.Findings())
	evs = append(evs, h.trk.Tick(now)...)
	for _, ev := range evs {
		h.db.SaveSensorIncident(GroupSource, 0, ev, nil)
		if ev.Kind == incident.Open {
			h.incidents.Add(1)
			h.o.Logger.Warn("hub: cross-site incident", "id", ev.Incident.ID, "title", ev.Incident.Title)
		}
	}
}

// watchRevocations closes, every few seconds after the PKI's CRL changes,
// the connections made with a certificate it now revokes.
func (h *Hub) watchRevocations() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var seen time.Time
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(filepath.Join(h.o.Security.Dir, "ca.crl"))
		if err != nil || fi.ModTime().Equal(seen) {
			continue
		}
		seen = fi.ModTime()
		if n := h.o.Security.dropRevoked(h.srv); n > 0 {
			h.o.Logger.Warn("hub: connections with a revoked certificate closed", "connections", n)
		}
	}
}

// retain prunes the history: Retain back from the newest minute, and the
// facts older than two days.
func (h *Hub) retain() {
	h.retainedAt = time.Now()
	newest := h.db.LastMinute("")
	if newest == 0 {
		return
	}
	h.db.KeepFactsFrom(newest - 2*24*60)
	h.db.Retain(time.Unix(newest*60, 0).Add(-h.o.Retain))
}

// URL is where sensors connect (the embedded server's, or Options.NATS).
func (h *Hub) URL() string { return h.url }

// DB is the hub's history.
func (h *Hub) DB() *history.DB { return h.db }

// consume fetches batches, stores them, and acknowledges them once the
// history has committed them: a crash before the commit gets them again,
// and storing them again changes nothing.
func (h *Hub) consume() {
	defer close(h.done)
	for h.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(h.ctx, time.Second)
		batch, err := h.cons.Fetch(fetchBatch, jetstream.FetchContext(ctx))
		if err != nil {
			cancel()
			if h.ctx.Err() == nil {
				h.fail(err)
				time.Sleep(250 * time.Millisecond)
			}
			continue
		}
		var stored []jetstream.Msg
		for m := range batch.Messages() {
			if h.handle(m) {
				stored = append(stored, m)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			h.fail(err)
		}
		cancel()
		// The cross-site detectors run at most once a second, and whenever
		// a batch comes short (the stream is drained), before its
		// acknowledgement: judging every batch cost a core at 200 sensors a
		// second, and what is acknowledged has been judged.
		if h.pending && (len(stored) < fetchBatch || time.Since(h.evalAt) >= time.Second) {
			h.evaluate()
		}
		if time.Since(h.retainedAt) >= time.Hour {
			h.retain()
		}
		if len(stored) == 0 {
			continue
		}
		if err := h.db.Sync(); err != nil {
			h.fail(err) // not acknowledged: delivered again
			continue
		}
		for _, m := range stored {
			if err := m.Ack(); err != nil {
				h.fail(err)
			}
		}
	}
}

// handle queues one message's writes; false when it was refused
// (terminated: a damaged message is not delivered again).
func (h *Hub) handle(m jetstream.Msg) bool {
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
		h.redelivered.Add(1)
	}
	refuse := func(why string) bool {
		h.rejected.Add(1)
		h.fail(fmt.Errorf("%s: %s", m.Subject(), why))
		m.Term()
		return false
	}
	site, sensor, kind, ok := parseSubject(m.Subject())
	if !ok {
		return refuse("not a sensor subject")
	}
	src := Source(site, sensor)
	switch kind {
	case KindMinute:
		hd := m.Headers()
		num := func(k string) (int64, bool) {
			v, err := strconv.ParseInt(hd.Get(k), 10, 64)
			return v, err == nil
		}
		run, ok1 := num(HeaderRun)
		seq, ok2 := num(HeaderSeq)
		minute, ok3 := num(HeaderMinute)
		frames, ok4 := num(HeaderFrames)
		if !ok1 || !ok2 || !ok3 || !ok4 || seq < 1 || frames < 0 {
			return refuse("minute without its run, number, minute or frames")
		}
		if minute > time.Now().Add(time.Hour).Unix()/60 {
			// One sensor's clock must not move the group's newest minute
			// (the dashboard's windows) into the future.
			return refuse("a minute more than an hour ahead of the hub's clock")
		}
		// Checked, not decoded (decoding was half the hub's work): the
		// report decodes it, and skips, with a warning, what it cannot.
		if err := analysis.CheckPacked(m.Data(), maxInflated); err != nil {
			return refuse(err.Error())
		}
		h.db.SaveSensorMinute(src, run, seq, minute, frames, m.Data(), nil)
		h.minutes.Add(1)
	case KindEvent:
		var ev Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			return refuse(err.Error())
		}
		switch {
		case ev.Facts != nil:
			if err := ev.Facts.Check(time.Now()); err != nil {
				return refuse(err.Error())
			}
			js, _ := json.Marshal(ev.Facts)
			h.db.SaveFacts(src, ev.Run, ev.Seq, ev.Minute, js, nil)
			h.addFacts(src, ev.Run, ev.Seq, ev.Facts)
		case ev.Incident != nil:
			h.db.SaveSensorIncident(src, ev.Run, *ev.Incident, nil)
		case ev.Device != nil:
			h.db.SaveDevice(src, *ev.Device, nil)
		case ev.Minutes > 0:
			h.db.SaveRunEnd(src, ev.Run, ev.Minutes, nil)
		default:
			return refuse("an event with neither incident nor device")
		}
		h.events.Add(1)
	default:
		return refuse("unknown kind " + kind)
	}
	return true
}

func (h *Hub) fail(err error) {
	h.lastErr.Store(err.Error())
	h.o.Logger.Warn("hub", "error", err)
}

// Stats reads the hub's counters.
func (h *Hub) Stats() Stats {
	s := Stats{Minutes: h.minutes.Load(), Events: h.events.Load(), Redelivered: h.redelivered.Load(), Rejected: h.rejected.Load(),
		Incidents: h.incidents.Load()}
	s.LastError, _ = h.lastErr.Load().(string)
	return s
}

// Pending is how many stream messages this hub has not acknowledged yet
// (-1 when the server cannot say).
func (h *Hub) Pending(ctx context.Context) int64 {
	ci, err := h.cons.Info(ctx)
	if err != nil {
		return -1
	}
	pending := int64(ci.NumPending) + int64(ci.NumAckPending)
	// The server updates NumPending as it signals new messages to the
	// consumer, which can lag a burst just stored (a test saw 0 pending
	// with six minutes in the stream and none stored); what the stream
	// holds past this consumer's acknowledgement floor is owed too.
	if si, err := h.stream.Info(ctx); err == nil && si.State.LastSeq > ci.AckFloor.Stream {
		pending = max(pending, int64(si.State.LastSeq-ci.AckFloor.Stream))
	}
	return pending
}

// Close stops consuming, then closes the history and the embedded server.
func (h *Hub) Close() error {
	var err error
	h.once.Do(func() {
		h.cancel()
		<-h.done
		if h.pending {
			h.evaluate()
		}
		if at := h.clocks.judgeAt(h.group.Newest(), time.Now()); h.trk != nil && at != 0 {
			for _, ev := range h.trk.Flush(time.Unix(0, at).UTC()) {
				h.db.SaveSensorIncident(GroupSource, 0, ev, nil)
			}
		}
		err = h.shutdown()
	})
	return err
}

func (h *Hub) shutdown() error {
	var err error
	if h.nc != nil {
		h.nc.Close()
	}
	if h.db != nil {
		err = h.db.Close()
	}
	if h.srv != nil {
		h.srv.Shutdown()
		h.srv.WaitForShutdown()
	}
	return err
}
