package hub

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/detect"
	"github.com/iomtguard/iomtguard/internal/incident"
	"github.com/iomtguard/iomtguard/internal/inventory"
)

// SensorOptions configure a sensor's link to its hub.
type SensorOptions struct {
	URL          string      // nats://HOST:PORT (several, comma-separated, for a cluster)
	Site, Sensor string      // names (CheckName)
	TLS          *tls.Config // client certificate and CA (nil: plain TCP)
	// Spool is the directory holding what the hub has not acknowledged
	// yet (default: memory only, lost if the sensor stops before the hub
	// is back).
	Spool string
	// MaxSpool bounds the spool (default 1 GiB on disk, 64 MiB in memory);
	// past it new messages are dropped and counted.
	MaxSpool int64
	// Patient makes Minute and Event wait for room (a replay) rather than
	// drop (a live source, which must not fall behind the wire).
	Patient bool
	Logger  *slog.Logger
}

// Event is what a sensor tells its hub besides minutes: an incident event
// or a device's latest view.
type Event struct {
	Run      int64             `json:"run"`
	Seq      int64             `json:"seq"` // the event's number in the run
	Incident *incident.Event   `json:"incident,omitempty"`
	Device   *inventory.Device `json:"device,omitempty"`
	// Facts are a minute's session facts, for the cross-site detectors.
	Facts  *detect.Facts `json:"facts,omitempty"`
	Minute int64         `json:"minute,omitempty"`
	// Minutes, in the run's last event, is how many minutes it numbered:
	// the hub then knows of minutes lost at the end of a run too.
	Minutes int64 `json:"minutes,omitempty"`
}

// SensorStats are a sensor's counters.
type SensorStats struct {
	Connected   bool   `json:"connected"`
	Minutes     int64  `json:"minutes"`     // minutes handed to the sensor
	Events      int64  `json:"events"`      // events handed to the sensor
	Published   int64  `json:"published"`   // messages the hub's stream acknowledged
	Dropped     int64  `json:"dropped"`     // messages lost: the spool or the intake was full
	Sketched    int64  `json:"sketched"`    // minutes sent with sketched columns (too large for one message)
	Spooled     int    `json:"spooled"`     // messages waiting for the hub
	SpoolBytes  int64  `json:"spool_bytes"` // their size
	LastError   string `json:"last_error,omitempty"`
	Unreachable int64  `json:"unreachable"` // failed publish attempts (the hub's NATS unreachable or slow)
	WireBytes   uint64 `json:"wire_bytes"`  // bytes written to NATS (messages, headers and protocol; before TLS)
	Reconnects  uint64 `json:"reconnects"`  // connections to NATS made again (a node or the hub went away)
}

type intake struct {
	seq    int64
	minute int64
	st     *analysis.State
	ev     *Event
}

// Sensor publishes a watch's minutes and events to the hub. Minute and
// Event never block a live source: they queue, a goroutine packs each into
// the spool, another publishes the spool in order and removes what the
// stream acknowledged, retrying while the hub's NATS is unreachable.
type Sensor struct {
	o        SensorOptions
	run      int64
	idPrefix string // of its messages' IDs: site, sensor, run and a random part
	nc       *nats.Conn
	js       jetstream.JetStream
	in       chan intake
	sp       *spool

	seq, evSeq atomic.Int64
	stats      struct {
		minutes, events, published, dropped, sketched, unreachable atomic.Int64
	}
	lastErr atomic.Value
	packed  chan struct{}
	sent    chan struct{}
	stop    chan struct{}   // Close gives up: the deadline passed
	closing chan struct{}   // Close began: nothing more is handed over
	ctx     context.Context // ends with stop
	cancel  context.CancelFunc
	once    sync.Once
}

// NewSensor connects to the hub (in the background: a hub that is not up
// yet is retried) and starts publishing.
func NewSensor(o SensorOptions) (*Sensor, error) {
	if err := CheckName("site", o.Site); err != nil {
		return nil, err
	}
	if err := CheckName("sensor", o.Sensor); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxSpool <= 0 {
		o.MaxSpool = 64 << 20
		if o.Spool != "" {
			o.MaxSpool = 1 << 30
		}
	}
	sp, err := openSpool(o.Spool, o.MaxSpool)
	if err != nil {
		return nil, fmt.Errorf("hub spool: %w", err)
	}
	s := &Sensor{o: o, run: time.Now().UnixNano(), in: make(chan intake, 64), sp: sp,
		packed: make(chan struct{}), sent: make(chan struct{}), stop: make(chan struct{}), closing: make(chan struct{})}
	// The message IDs carry a random part: JetStream drops a message whose
	// ID it has seen on any subject, and another sensor must not be able
	// to guess this one's IDs and have its minutes dropped.
	var nonce [12]byte
	rand.Read(nonce[:])
	s.idPrefix = fmt.Sprintf("%s.%s.%d.%x.", o.Site, o.Sensor, s.run, nonce)
	opts := []nats.Option{nats.Name("iomtguard-sensor " + Source(o.Site, o.Sensor)), nats.MaxReconnects(-1),
		nats.CustomInboxPrefix(InboxPrefix(SensorCertName(o.Site, o.Sensor))),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(500 * time.Millisecond),
		// Nothing waits in the client's buffer while disconnected: the
		// spool is the one buffer, bounded and on disk.
		nats.ReconnectBufSize(-1)}
	if o.TLS != nil {
		opts = append(opts, nats.Secure(o.TLS))
	}
	s.nc, err = nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("hub %s: %w", o.URL, err)
	}
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		s.nc.Close()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.pack()
	go s.send()
	return s, nil
}

// Minute hands over a closed minute's State (it must not change after).
func (s *Sensor) Minute(minute int64, st *analysis.State) {
	s.stats.minutes.Add(1)
	s.put(intake{seq: s.seq.Add(1), minute: minute, st: st})
}

// Incident hands over an incident event.
func (s *Sensor) Incident(ev incident.Event) {
	s.stats.events.Add(1)
	s.put(intake{ev: &Event{Run: s.run, Seq: s.evSeq.Add(1), Incident: &ev}})
}

// Facts hands over a minute's session facts.
func (s *Sensor) Facts(minute int64, f *detect.Facts) {
	s.stats.events.Add(1)
	s.put(intake{ev: &Event{Run: s.run, Seq: s.evSeq.Add(1), Facts: f, Minute: minute}})
}

// Device hands over a device's latest view.
func (s *Sensor) Device(d inventory.Device) {
	s.stats.events.Add(1)
	s.put(intake{ev: &Event{Run: s.run, Seq: s.evSeq.Add(1), Device: &d}})
}

func (s *Sensor) put(it intake) {
	select {
	case <-s.closing:
		s.stats.dropped.Add(1) // handed over after Close began
		return
	default:
	}
	if s.o.Patient {
		select {
		case s.in <- it:
		case <-s.closing:
			s.stats.dropped.Add(1)
		}
		return
	}
	select {
	case s.in <- it:
	default:
		s.stats.dropped.Add(1)
	}
}

// pack turns what is handed over into spool records, in order, until
// Close; what is still handed over then is packed too, and what arrives
// after is counted as dropped by Close.
func (s *Sensor) pack() {
	defer close(s.packed)
	for {
		select {
		case it := <-s.in:
			s.packOne(it)
		case <-s.closing:
			for {
				select {
				case it := <-s.in:
					s.packOne(it)
				default:
					return
				}
			}
		}
	}
}

func (s *Sensor) packOne(it intake) {
	r, err := s.record(it)
	if err != nil {
		s.fail(err)
		s.stats.dropped.Add(1)
		return
	}
	for {
		ok, err := s.sp.push(r)
		if err != nil {
			s.fail(err)
		}
		if ok {
			return
		}
		if !s.o.Patient || err != nil || r.size > s.o.MaxSpool {
			s.stats.dropped.Add(1) // full (or larger than the whole spool)
			return
		}
		select { // a replay waits for the hub, until Close gives up
		case <-s.stop:
			s.stats.dropped.Add(1)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Sensor) record(it intake) (*record, error) {
	id := s.idPrefix
	if it.ev != nil {
		b, err := json.Marshal(it.ev)
		if err != nil {
			return nil, err
		}
		if limit := s.maxPayload(); int64(len(b)) > limit-4096 {
			return nil, fmt.Errorf("event %d: %d bytes, above the hub's message limit of %d", it.ev.Seq, len(b), limit)
		}
		return &record{Subject: Subject(s.o.Site, s.o.Sensor, KindEvent), Body: b,
			Header: map[string][]string{jetstream.MsgIDHeader: {id + "e" + strconv.FormatInt(it.ev.Seq, 10)}}}, nil
	}
	b, err := it.st.Pack()
	if err != nil {
		return nil, err
	}
	if limit := s.maxPayload(); int64(len(b)) > limit-4096 {
		// Too large for one message: the columns go as sketches (the hub's
		// quartiles then carry the sketch's stated error).
		if b, err = it.st.Sketched().Pack(); err != nil {
			return nil, err
		}
		s.stats.sketched.Add(1)
		if int64(len(b)) > limit-4096 {
			return nil, fmt.Errorf("minute %d: %d bytes packed, above the hub's message limit of %d even sketched", it.minute, len(b), limit)
		}
	}
	return &record{Subject: Subject(s.o.Site, s.o.Sensor, KindMinute), Body: b, Header: map[string][]string{
		jetstream.MsgIDHeader: {id + "m" + strconv.FormatInt(it.seq, 10)},
		HeaderRun:             {strconv.FormatInt(s.run, 10)},
		HeaderSeq:             {strconv.FormatInt(it.seq, 10)},
		HeaderMinute:          {strconv.FormatInt(it.minute, 10)},
		HeaderFrames:          {strconv.FormatInt(it.st.Summary.Frames, 10)},
	}}, nil
}

// maxPayload is the server's message limit (the embedded hub's default
// before the first connection).
func (s *Sensor) maxPayload() int64 {
	if m := s.nc.MaxPayload(); m > 0 {
		return m
	}
	return DefaultMaxPayload
}

// send publishes the spool in order, each message acknowledged by the
// stream before the next.
func (s *Sensor) send() {
	defer close(s.sent)
	wait := 250 * time.Millisecond
	failing := false
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		r, err := s.sp.peek()
		if r == nil && err == nil {
			return // closed and drained
		}
		if err != nil {
			// A damaged spool file: dropped, counted, never retried.
			s.fail(err)
			s.stats.dropped.Add(1)
			s.sp.pop(r)
			continue
		}
		m := &nats.Msg{Subject: r.Subject, Header: nats.Header(r.Header), Data: r.Body}
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		_, err = s.js.PublishMsg(ctx, m)
		cancel()
		if err != nil && (errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject)) {
			// It will never pass (a server with a smaller message limit than
			// the one the record was made for): dropped and counted, not
			// retried for ever in front of everything behind it.
			s.fail(fmt.Errorf("%s: %w: dropped", r.Subject, err))
			s.stats.dropped.Add(1)
			s.sp.pop(r)
			continue
		}
		if err != nil {
			s.stats.unreachable.Add(1)
			if !s.nc.IsConnected() {
				err = fmt.Errorf("the hub's NATS (%s) is not reachable: spooling (%w)", s.o.URL, err)
			}
			s.lastErr.Store(err.Error())
			if !failing {
				// Said once when the link fails, and once when it is back.
				s.o.Logger.Warn("hub", "error", err)
				failing = true
			}
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		wait = 250 * time.Millisecond
		if failing {
			n, _ := s.sp.len()
			s.o.Logger.Info("hub reachable again: sending the spool", "waiting", n)
			failing = false
		}
		s.stats.published.Add(1)
		s.sp.pop(r)
	}
}

func (s *Sensor) fail(err error) {
	s.lastErr.Store(err.Error())
	s.o.Logger.Warn("hub", "error", err)
}

// Stats reads the sensor's counters.
func (s *Sensor) Stats() SensorStats {
	n, b := s.sp.len()
	st := SensorStats{Connected: s.nc.IsConnected(), Minutes: s.stats.minutes.Load(), Events: s.stats.events.Load(),
		Published: s.stats.published.Load(), Dropped: s.stats.dropped.Load(), Sketched: s.stats.sketched.Load(),
		Spooled: n, SpoolBytes: b, Unreachable: s.stats.unreachable.Load(), WireBytes: s.nc.Stats().OutBytes, Reconnects: s.nc.Stats().Reconnects}
	st.LastError, _ = s.lastErr.Load().(string)
	return st
}

// Status says how the link to the hub is, for the dashboard: fine while
// connected with nothing lost.
func (s *Sensor) Status() (string, bool) {
	st := s.Stats()
	switch {
	case st.Dropped > 0:
		return fmt.Sprintf("hub: %d messages lost (spool full), %d waiting", st.Dropped, st.Spooled), false
	case !st.Connected:
		return fmt.Sprintf("hub unreachable: %d messages waiting in the spool", st.Spooled), false
	}
	return fmt.Sprintf("hub: connected, %d acknowledged, %d waiting", st.Published, st.Spooled), true
}

// Close delivers what is handed over, waiting at most until ctx ends; what
// is left stays in a disk spool for the next run (and is lost with a
// memory spool: the error says how much).
func (s *Sensor) Close(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		// The deadline counts from now, also while what is handed over is
		// packed (a patient sensor waits for room in its spool).
		done := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
			case <-done:
			}
			close(s.stop)
			s.cancel() // and an acknowledgement awaited is not awaited any more
		}()
		// The run's last word: how many minutes it numbered.
		if n := s.seq.Load(); n > 0 {
			s.stats.events.Add(1)
			select {
			case s.in <- intake{ev: &Event{Run: s.run, Seq: s.evSeq.Add(1), Minutes: n}}:
			default:
				s.stats.dropped.Add(1)
			}
		}
		close(s.closing)
		<-s.packed
		s.stats.dropped.Add(int64(len(s.in))) // handed over while Close began
		s.sp.waitEmpty(s.stop)
		close(done)
		s.sp.close()
		<-s.sent
		s.nc.Close()
		if n, _ := s.sp.len(); n > 0 {
			where := "lost (memory spool)"
			if s.o.Spool != "" {
				where = "left in " + s.o.Spool + " for the next run"
			}
			err = fmt.Errorf("hub: %d messages not acknowledged by the hub: %s", n, where)
		}
	})
	return err
}
