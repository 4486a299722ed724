// Package source gives the pipeline frames from live or growing inputs: a
// network interface (AF_PACKET with a memory-mapped ring, pure Go), a pcap
// or pcapng stream (stdin), a directory that a rotating capture writes, and
// a capture replayed at N times real time. Each is a pipeline.Input, so
// decoding, aggregation and detection are the same code offline and live.
//
// A reader goroutine fills batches of frames into a bounded queue that Next
// drains. When nothing arrives for a second, Next returns a tick (a Record
// with Tick set) whose time is the capture clock (the last frame's time
// plus the wall time since, times the replay speed), so that windows roll
// and incidents close on a quiet network too.
//
// Nothing is dropped silently: the kernel's drops (the ring was full) and
// this package's (the queue was full: only a live interface drops, a file
// or a stream waits instead) are counted in Stats, which the dashboard, the
// metrics and the log show.
package source

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iomtguard/iomtguard/internal/capture"
	"github.com/iomtguard/iomtguard/internal/packet"
	"github.com/iomtguard/iomtguard/internal/pipeline"
)

// Options shared by every source.
type Options struct {
	// Filter keeps only the frames it matches (nil: all).
	Filter *Filter
	// Tick is how long Next waits for a frame before it returns a tick
	// (default 1 s).
	Tick time.Duration
	// QueueFrames bounds the frames held between the reader and the
	// pipeline (default 65536).
	QueueFrames int
	// Now is the wall clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.QueueFrames <= 0 {
		o.QueueFrames = 65536
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Stats are a source's counters; read them from any goroutine.
type Stats struct {
	Frames      atomic.Int64 // frames given to the pipeline
	Bytes       atomic.Int64 // their original lengths
	Filtered    atomic.Int64 // frames the filter left out
	KernelDrops atomic.Int64 // frames the kernel dropped (its ring was full)
	QueueDrops  atomic.Int64 // frames dropped here (the queue was full)
	Files       atomic.Int64 // files read (directory source)
	Damaged     atomic.Int64 // inputs that ended damaged (a file cut short)
}

// Snapshot is Stats as plain numbers.
type Snapshot struct {
	Frames      int64 `json:"frames"`
	Bytes       int64 `json:"bytes"`
	Filtered    int64 `json:"filtered"`
	KernelDrops int64 `json:"kernel_drops"`
	QueueDrops  int64 `json:"queue_drops"`
	Files       int64 `json:"files,omitempty"`
	Damaged     int64 `json:"damaged,omitempty"`
}

// Snapshot reads the counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{Frames: s.Frames.Load(), Bytes: s.Bytes.Load(), Filtered: s.Filtered.Load(), KernelDrops: s.KernelDrops.Load(),
		QueueDrops: s.QueueDrops.Load(), Files: s.Files.Load(), Damaged: s.Damaged.Load()}
}

// batchFrames is how many frames travel between the goroutines at once.
const batchFrames = 256

type batch struct {
	pkts  []capture.Packet
	arena []byte
	err   error // the reader's last word (io.EOF, damage), after pkts
}

// Source is a pipeline.Input fed by a reader goroutine.
type Source struct {
	name, format string
	opts         Options
	stats        *Stats
	full, free   chan *batch
	cur          *batch
	i            int
	done         bool
	closeOnce    sync.Once
	stop         chan struct{}
	stopped      chan struct{}
	closer       func() error

	// The capture clock, for ticks.
	lastTS   int64
	lastWall time.Time
	speed    float64 // capture seconds per wall second (0: 1)
}

// producer is what a reader goroutine uses to hand frames on.
type producer struct {
	s       *Source
	mu      sync.Mutex // cur: the reader fills it, a flusher hands it on every 50 ms
	cur     *batch
	drop    bool         // a live interface: drop when the queue is full rather than wait
	scratch packet.Frame // what the filter decodes into
}

func newSource(name, format string, opts Options, stats *Stats, drop bool, closer func() error, run func(p *producer) error) *Source {
	opts.defaults()
	if stats == nil {
		stats = &Stats{}
	}
	n := max(2, opts.QueueFrames/batchFrames)
	s := &Source{name: name, format: format, opts: opts, stats: stats, full: make(chan *batch, n), free: make(chan *batch, n+2),
		stop: make(chan struct{}), stopped: make(chan struct{}), closer: closer}
	for i := 0; i < n+2; i++ {
		s.free <- &batch{}
	}
	p := &producer{s: s, drop: drop}
	done := make(chan struct{})
	go func() {
		// A frame waits at most 50 ms in a batch that is not full: a quiet
		// network's frames are not held back.
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.mu.Lock()
				p.flush()
				p.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	go func() {
		defer close(s.stopped)
		err := run(p)
		close(done)
		if err == nil {
			err = io.EOF
		}
		p.mu.Lock()
		p.finish(err)
		p.mu.Unlock()
	}()
	return s
}

// add hands one packet on (data is copied). It reports false when the
// source is closing.
func (p *producer) add(pkt *capture.Packet) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.s
	if f := s.opts.Filter; f != nil {
		packet.DecodeLen(pkt.LinkType, pkt.Data, max(pkt.CapLen, pkt.OrigLen), &p.scratch)
		if !f.Match(&p.scratch) {
			s.stats.Filtered.Add(1)
			return true
		}
	}
	if p.cur == nil {
		if !p.take() {
			return !p.closed()
		}
	}
	b := p.cur
	off := len(b.arena)
	b.arena = append(b.arena, pkt.Data...)
	q := *pkt
	q.Data = b.arena[off:len(b.arena):len(b.arena)]
	b.pkts = append(b.pkts, q)
	if len(b.pkts) == batchFrames || len(b.arena) > 4<<20 {
		return p.flush()
	}
	return true
}

// take gets an empty batch; a dropping producer never waits.
func (p *producer) take() bool {
	if p.drop {
		select {
		case b := <-p.s.free:
			p.cur = b
			return true
		default:
			p.s.stats.QueueDrops.Add(1)
			return false
		}
	}
	select {
	case b := <-p.s.free:
		p.cur = b
		return true
	case <-p.s.stop:
		return false
	}
}

// flush hands the current batch on.
func (p *producer) flush() bool {
	if p.cur == nil || len(p.cur.pkts) == 0 {
		return true
	}
	b := p.cur
	p.cur = nil
	select {
	case p.s.full <- b:
		return true
	case <-p.s.stop:
		return false
	}
}

func (p *producer) closed() bool {
	select {
	case <-p.s.stop:
		return true
	default:
		return false
	}
}

// finish hands on what is pending and the reader's last error.
func (p *producer) finish(err error) {
	if p.cur == nil {
		select {
		case p.cur = <-p.s.free:
		case <-p.s.stop:
			return
		}
	}
	p.cur.err = err
	b := p.cur
	p.cur = nil
	select {
	case p.s.full <- b:
	case <-p.s.stop:
	}
}

// Name and Format describe the source.
func (s *Source) Name() string   { return s.name }
func (s *Source) Format() string { return s.format }

// Stats are the source's counters.
func (s *Source) Stats() *Stats { return s.stats }

// Progress is not known for a live source.
func (s *Source) Progress() (done, total int64) { return s.stats.Bytes.Load(), 0 }

// Next gives the next frame, or a tick after a quiet second, or the end.
func (s *Source) Next(rec *pipeline.Record) error {
	for {
		if s.cur != nil && s.i < len(s.cur.pkts) {
			p := &s.cur.pkts[s.i]
			s.i++
			*rec = pipeline.Record{TS: p.Timestamp, Pkt: *p, Idle: s.i == len(s.cur.pkts)}
			s.stats.Frames.Add(1)
			s.stats.Bytes.Add(int64(p.OrigLen))
			s.lastTS = p.Timestamp
			return nil
		}
		if s.cur != nil {
			if err := s.cur.err; err != nil {
				s.done = true
				return err
			}
			s.cur.pkts, s.cur.arena, s.i = s.cur.pkts[:0], s.cur.arena[:0], 0
			s.free <- s.cur
			s.cur = nil
		}
		if s.done {
			return io.EOF
		}
		t := time.NewTimer(s.opts.Tick)
		select {
		case b := <-s.full:
			t.Stop()
			s.cur, s.i = b, 0
			s.lastWall = s.opts.Now() // per batch: the clock of ticks needs no better
		case <-t.C:
			*rec = pipeline.Record{TS: s.clock(), Tick: true}
			return nil
		}
	}
}

// clock is the capture time now: the last frame's time plus the wall time
// since, times the speed.
func (s *Source) clock() int64 {
	now := s.opts.Now()
	if s.lastTS == 0 {
		return now.UnixNano()
	}
	speed := s.speed
	if speed <= 0 {
		speed = 1
	}
	return s.lastTS + int64(float64(now.Sub(s.lastWall))*speed)
}

// Close stops the reader.
func (s *Source) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		if s.closer != nil {
			err = s.closer()
		}
		// Let a waiting reader go.
		for {
			select {
			case <-s.stopped:
				return
			case b := <-s.full:
				_ = b
			}
		}
	})
	return err
}
