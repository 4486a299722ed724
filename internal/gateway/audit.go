package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Record is one audit log line. It never holds a password, a key or a
// payload: a payload's size at most.
type Record struct {
	Time     time.Time `json:"time"`
	Identity string    `json:"identity,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Source   string    `json:"source,omitempty"` // ip:port
	Action   string    `json:"action"`           // tls, connect, subscribe, publish, disconnect, ban, unban, finding
	Topic    string    `json:"topic,omitempty"`
	QoS      *byte     `json:"qos,omitempty"`
	Bytes    int       `json:"bytes,omitempty"`
	Verdict  string    `json:"verdict"` // allow, deny, info
	Reason   string    `json:"reason,omitempty"`
	Code     *byte     `json:"code,omitempty"` // MQTT reason code sent
}

// audit writes records as JSON lines, buffered and flushed every 200 ms
// (and on Close), safe for concurrent use.
type audit struct {
	mu   sync.Mutex
	w    *bufio.Writer
	enc  *json.Encoder
	c    io.Closer
	done chan struct{}
	wg   sync.WaitGroup
}

func newAudit(w io.Writer) *audit {
	a := &audit{w: bufio.NewWriterSize(w, 64<<10), done: make(chan struct{})}
	a.enc = json.NewEncoder(a.w)
	if c, ok := w.(io.Closer); ok {
		a.c = c
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-a.done:
				return
			case <-t.C:
				a.flush()
			}
		}
	}()
	return a
}

func (a *audit) log(r Record) {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	a.mu.Lock()
	a.enc.Encode(r)
	a.mu.Unlock()
}

func (a *audit) flush() {
	a.mu.Lock()
	a.w.Flush()
	a.mu.Unlock()
}

func (a *audit) close() {
	close(a.done)
	a.wg.Wait()
	a.flush()
	if a.c != nil {
		a.c.Close()
	}
}

func code(c byte) *byte { return &c }
