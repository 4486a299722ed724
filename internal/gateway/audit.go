package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"time"
	"unicode/utf8"
)

// Record is one audit log line. It never holds a password, a key or a
// payload: a payload's size at most. Fields a client chooses (topic, client
// ID, identity) are cut to a fixed size, with the true length kept.
type Record struct {
	Time        time.Time `json:"time"`
	Identity    string    `json:"identity,omitempty"`
	ClientID    string    `json:"client_id,omitempty"`
	ClientIDLen int       `json:"client_id_len,omitempty"` // set when ClientID was cut
	Source      string    `json:"source,omitempty"`        // ip:port
	Action      string    `json:"action"`                  // tls, connect, subscribe, publish, disconnect, ban, unban, finding, reload, revoke, start, stop
	Topic       string    `json:"topic,omitempty"`
	TopicLen    int       `json:"topic_len,omitempty"` // set when Topic was cut
	QoS         *byte     `json:"qos,omitempty"`
	Bytes       int       `json:"bytes,omitempty"`
	Verdict     string    `json:"verdict"` // allow, deny, info
	Reason      string    `json:"reason,omitempty"`
	Rule        string    `json:"rule,omitempty"` // the policy rule or limit applied
	Code        *byte     `json:"code,omitempty"` // MQTT reason code sent

	// Summary lines: Repeats records with the same identity (or address),
	// action, verdict and rule were not written one by one between Since
	// and Time; ExampleTopics are a few of their topics.
	Repeats       int64      `json:"repeats,omitempty"`
	Since         *time.Time `json:"since,omitempty"`
	ExampleTopics []string   `json:"example_topics,omitempty"`
}

// Caps on what one audit line can hold.
const (
	maxAuditTopic  = 256
	maxAuditID     = 128
	maxAuditReason = 512
	exampleTopics  = 3
)

// AuditOptions bound the audit log. Zero values take the defaults.
type AuditOptions struct {
	// Window is the summary interval (default 10 s): within it, a key
	// (identity or address, action, verdict, rule) gets PerKey full lines
	// and then one summary line with the count of the rest.
	Window time.Duration
	PerKey int // default 5
	// Rate is how many full lines a second the whole log may take (default
	// 50, bursts of 4× that); past it, records are only counted.
	Rate float64
	// MaxKeys is how many keys one window tracks (default 500); records of
	// further keys are counted together per action, verdict and rule.
	MaxKeys int
	// MaxSize rotates a file log when it reaches this many bytes (default
	// 100 MB; negative: never); Keep rotated files are kept (default 5).
	MaxSize int64
	Keep    int
}

func (o *AuditOptions) defaults() {
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.PerKey <= 0 {
		o.PerKey = 5
	}
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 500
	}
	if o.MaxSize == 0 {
		o.MaxSize = 100 << 20
	}
	if o.Keep <= 0 {
		o.Keep = 5
	}
}

type auditKey struct{ who, action, verdict, rule string }

type auditCount struct {
	written    int
	suppressed int64
	since      time.Time
	last       Record
	topics     []string
}

// audit writes records as JSON lines, buffered and flushed every 200 ms
// (and on close), safe for concurrent use. Every decision that matters is
// recorded, but repeats are summarised so that no client can make the log
// grow faster than the window's summaries and the line budget allow.
type audit struct {
	opts AuditOptions
	now  func() time.Time

	mu       sync.Mutex
	w        *bufio.Writer
	out      io.Writer
	enc      *json.Encoder
	keys     map[auditKey]*auditCount
	tokens   float64
	lastFill time.Time
	written  int64 // lines, for metrics and tests
	repeats  int64 // records folded into summaries

	done chan struct{}
	wg   sync.WaitGroup
}

func newAudit(w io.Writer, opts AuditOptions, now func() time.Time) *audit {
	opts.defaults()
	if now == nil {
		now = time.Now
	}
	a := &audit{opts: opts, now: now, out: w, w: bufio.NewWriterSize(w, 64<<10), keys: map[auditKey]*auditCount{},
		tokens: 4 * opts.Rate, done: make(chan struct{})}
	a.enc = json.NewEncoder(a.w)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		flush := time.NewTicker(200 * time.Millisecond)
		defer flush.Stop()
		window := time.NewTicker(opts.Window)
		defer window.Stop()
		for {
			select {
			case <-a.done:
				return
			case <-flush.C:
				a.flush()
			case <-window.C:
				a.summarise()
			}
		}
	}()
	return a
}

// capString cuts s to n bytes on a UTF-8 boundary and says whether it did.
func capString(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…", true
}

func (r *Record) capFields() {
	if n := len(r.Topic); n > maxAuditTopic {
		r.Topic, _ = capString(r.Topic, maxAuditTopic)
		r.TopicLen = n
	}
	if n := len(r.ClientID); n > maxAuditID {
		r.ClientID, _ = capString(r.ClientID, maxAuditID)
		r.ClientIDLen = n
	}
	r.Identity, _ = capString(r.Identity, maxAuditID)
	r.Reason, _ = capString(r.Reason, maxAuditReason)
}

func (a *audit) log(r Record) {
	k, r := a.key(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.logLocked(k, r)
}

// key stamps r, caps its fields and returns its summary key.
func (a *audit) key(r Record) (auditKey, Record) {
	if r.Time.IsZero() {
		r.Time = a.now().UTC()
	}
	r.capFields()
	who := r.Identity
	if who == "" {
		who = hostOf(r.Source)
	}
	rule := r.Rule
	if rule == "" {
		rule = r.Reason
		if len(rule) > 64 {
			rule = rule[:64]
		}
	}
	return auditKey{who: who, action: r.Action, verdict: r.Verdict, rule: rule}, r
}

// logLocked writes r or folds it into its key's summary; the caller holds
// mu.
func (a *audit) logLocked(k auditKey, r Record) {
	c := a.keys[k]
	if c == nil {
		if len(a.keys) >= a.opts.MaxKeys {
			k.who = "*" // past the key budget, fold every source together
			c = a.keys[k]
		}
		if c == nil {
			c = &auditCount{}
			a.keys[k] = c
		}
	}
	// Refill the line budget.
	now := r.Time
	if !a.lastFill.IsZero() {
		a.tokens = min(4*a.opts.Rate, a.tokens+now.Sub(a.lastFill).Seconds()*a.opts.Rate)
	}
	a.lastFill = now
	if c.written < a.opts.PerKey && a.tokens >= 1 && k.who != "*" {
		c.written++
		a.tokens--
		a.write(&r)
		return
	}
	if c.suppressed == 0 {
		c.since = r.Time
	}
	c.suppressed++
	a.repeats++
	c.last = r
	if r.Topic != "" && len(c.topics) < exampleTopics && !contains(c.topics, r.Topic) {
		c.topics = append(c.topics, r.Topic)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// write encodes one line; the caller holds mu.
func (a *audit) write(r *Record) {
	a.enc.Encode(r)
	a.written++
}

// summarise writes one line per key whose records were not all written in
// the window that ends, and starts a new window.
func (a *audit) summarise() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.summariseLocked()
}

func (a *audit) summariseLocked() {
	keys := make([]auditKey, 0, len(a.keys))
	for k, c := range a.keys {
		if c.suppressed > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		x, y := keys[i], keys[j]
		return fmt.Sprint(x) < fmt.Sprint(y)
	})
	now := a.now().UTC()
	for _, k := range keys {
		c := a.keys[k]
		r := c.last
		since := c.since
		r.Time, r.Since, r.Repeats, r.ExampleTopics = now, &since, c.suppressed, c.topics
		r.Topic, r.TopicLen, r.Bytes, r.QoS = "", 0, 0, nil
		if k.who == "*" {
			r.Identity, r.ClientID, r.Source = "", "", "many (over the audit log's key budget)"
		}
		a.write(&r)
	}
	clear(a.keys)
}

// Stats reports the lines written and the records summarised so far.
func (a *audit) stats() (written, repeats int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.written, a.repeats
}

func (a *audit) flush() {
	a.mu.Lock()
	a.w.Flush()
	a.mu.Unlock()
}

// close writes last (the gateway's stop), the summaries of the window
// and what the buffer holds, and closes the sink. It waits at most wait
// for the log's lock: a broker client still running at shutdown may hold
// it (writing to a sink that stalled), and Gateway.Close must return
// whatever the clients do. False when it gave up: the last lines are
// lost, and the caller says so.
func (a *audit) close(last Record, wait time.Duration) bool {
	select {
	case <-a.done:
		return true
	default:
	}
	close(a.done)
	deadline := time.Now().Add(wait)
	for !a.mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	k, last := a.key(last)
	a.logLocked(k, last)
	a.summariseLocked()
	a.w.Flush()
	a.mu.Unlock()
	// The flusher ends at done; not waited for past the deadline (a
	// client may have taken mu again, and stalled).
	ended := make(chan struct{})
	go func() { a.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(time.Until(deadline)):
	}
	if c, ok := a.out.(io.Closer); ok && a.out != os.Stderr && a.out != os.Stdout {
		c.Close()
	}
	return true
}

func code(c byte) *byte { return &c }

// rotatingFile is an append-only file that is renamed to NAME.1 (NAME.1 to
// NAME.2, ...) when it reaches max bytes; keep rotated files are kept.
type rotatingFile struct {
	mu   sync.Mutex
	name string
	f    *os.File
	size int64
	max  int64
	keep int
}

func openRotating(name string, max int64, keep int) (*rotatingFile, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rotatingFile{name: name, f: f, size: st.Size(), max: max, keep: keep}, nil
}

func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.max > 0 && r.size > 0 && r.size+int64(len(p)) > r.max {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

func (r *rotatingFile) rotate() error {
	r.f.Close()
	for i := r.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", r.name, i), fmt.Sprintf("%s.%d", r.name, i+1))
	}
	os.Rename(r.name, r.name+".1")
	f, err := os.OpenFile(r.name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("gateway: audit: rotate %s: %w", r.name, err)
	}
	r.f, r.size = f, 0
	return nil
}

func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// hostOf returns the address part of host:port.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// AuditStats reports the audit lines written and the records folded into
// summary lines so far.
func (g *Gateway) AuditStats() (written, summarised int64) { return g.audit.stats() }
