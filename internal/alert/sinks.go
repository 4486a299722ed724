package alert

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// JSONLines writes one JSON object per line to w (a file, or stdout).
type JSONLines struct {
	name string
	q    *queue
	w    io.Writer
	c    io.Closer
}

// NewJSONLines writes alerts to path ("-": stdout), appending.
func NewJSONLines(path string) (*JSONLines, error) {
	j := &JSONLines{name: "jsonl", q: newQueue(10000)}
	if path == "-" {
		j.w = os.Stdout
	} else {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, err
		}
		j.w, j.c, j.name = f, f, "jsonl:"+path
	}
	go j.run()
	return j, nil
}

func (j *JSONLines) run() {
	defer close(j.q.done)
	bw := bufio.NewWriter(j.w)
	for a := range j.q.ch {
		b := append(a.JSON(), '\n')
		if _, err := bw.Write(b); err != nil {
			j.q.failed.Add(1)
			continue
		}
		if len(j.q.ch) == 0 {
			if err := bw.Flush(); err != nil {
				j.q.failed.Add(1)
				continue
			}
		}
		j.q.sent.Add(1)
	}
	bw.Flush()
}

func (j *JSONLines) Name() string { return j.name }
func (j *JSONLines) Send(a Alert) { j.q.send(a) }
func (j *JSONLines) Stats() Stats { return j.q.stats() }
func (j *JSONLines) Close() error {
	j.q.close(5 * time.Second)
	if j.c != nil {
		return j.c.Close()
	}
	return nil
}

// Syslog sends RFC 5424 messages over UDP or TCP (RFC 6587 octet counting).
type Syslog struct {
	q        *queue
	network  string
	addr     string
	hostname string
	app      string
}

// NewSyslog sends to udp://HOST:PORT or tcp://HOST:PORT.
func NewSyslog(target string) (*Syslog, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "udp" && u.Scheme != "tcp") || u.Host == "" {
		return nil, fmt.Errorf("syslog %q: want udp://HOST:PORT or tcp://HOST:PORT", target)
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "-"
	}
	s := &Syslog{q: newQueue(10000), network: u.Scheme, addr: u.Host, hostname: host, app: "iomtguard"}
	go s.run()
	return s, nil
}

// syslogSeverity maps a finding's severity to RFC 5424's.
func syslogSeverity(s string) int {
	switch s {
	case "critical":
		return 2
	case "high":
		return 3
	case "medium":
		return 4
	case "low":
		return 5
	}
	return 6
}

// facility 10: security/authorization messages.
const facility = 10

func sdEscape(s string) string { return sdEscaper.Replace(s) }

// sdEscaper escapes an RFC 5424 parameter value; made once (a Replacer is
// costly to build, and every alert escapes several values).
var sdEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

// Format is the RFC 5424 message of an alert: the structured data names the
// finding, the message is the alert's JSON.
func (s *Syslog) Format(a Alert) []byte {
	pri := facility*8 + syslogSeverity(a.Severity)
	msgID := a.Kind
	if msgID == "incident" {
		msgID = a.Event
	}
	body := a.JSON()
	if s.network == "udp" && len(body) > 8000 {
		// A datagram: keep it whole, without the long parts.
		a.Evidence, a.Controls, a.Defence = nil, nil, nil
		body = a.JSON()
	}
	return []byte(fmt.Sprintf("<%d>1 %s %s %s %d %s [iomtguard@32473 id=\"%s\" incident=\"%d\" severity=\"%s\" status=\"%s\"] %s",
		pri, a.At.UTC().Format("2006-01-02T15:04:05.000000Z"), s.hostname, s.app, os.Getpid(), msgID, sdEscape(a.ID), a.Incident,
		sdEscape(a.Severity), sdEscape(a.Event), body))
}

func (s *Syslog) run() {
	defer close(s.q.done)
	var conn net.Conn
	backoff := time.Second
	for a := range s.q.ch {
		msg := s.Format(a)
		if s.network == "tcp" {
			msg = append([]byte(fmt.Sprintf("%d ", len(msg))), msg...)
		}
		sent := false
		for try := 0; try < 3 && !sent; try++ {
			if conn == nil {
				c, err := net.DialTimeout(s.network, s.addr, 5*time.Second)
				if err != nil {
					time.Sleep(backoff)
					backoff = min(2*backoff, 30*time.Second)
					continue
				}
				conn, backoff = c, time.Second
			}
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write(msg); err != nil {
				conn.Close()
				conn = nil
				continue
			}
			sent = true
		}
		if sent {
			s.q.sent.Add(1)
		} else {
			s.q.failed.Add(1)
		}
	}
	if conn != nil {
		conn.Close()
	}
}

func (s *Syslog) Name() string { return "syslog:" + s.network + "://" + s.addr }
func (s *Syslog) Send(a Alert) { s.q.send(a) }
func (s *Syslog) Stats() Stats { return s.q.stats() }
func (s *Syslog) Close() error {
	s.q.close(5 * time.Second)
	return nil
}

// Webhook POSTs each alert as JSON, retrying failures (a network error, a
// 5xx or 429 answer) with exponential back-off.
type Webhook struct {
	q       *queue
	url     string
	client  *http.Client
	retries int
	backoff time.Duration
	ctx     context.Context
	cancel  context.CancelFunc
}

// NewWebhook posts to target (http or https).
func NewWebhook(target string) (*Webhook, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook %q: want an http:// or https:// URL", target)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Webhook{q: newQueue(1000), url: target, client: &http.Client{Timeout: 10 * time.Second}, retries: 6, backoff: time.Second,
		ctx: ctx, cancel: cancel}
	go w.run()
	return w, nil
}

func (w *Webhook) run() {
	defer close(w.q.done)
	for a := range w.q.ch {
		body := a.JSON()
		delay := w.backoff
		ok := false
		for try := 0; try < w.retries; try++ {
			req, _ := http.NewRequestWithContext(w.ctx, http.MethodPost, w.url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "iomtguard")
			resp, err := w.client.Do(req)
			if err == nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
				resp.Body.Close()
				if resp.StatusCode < 300 {
					ok = true
					break
				}
				if resp.StatusCode < 500 && resp.StatusCode != 429 {
					break // refused for good: retrying will not help
				}
			}
			select {
			case <-time.After(delay):
			case <-w.ctx.Done():
				try = w.retries
			}
			delay = min(2*delay, 60*time.Second)
		}
		if ok {
			w.q.sent.Add(1)
		} else {
			w.q.failed.Add(1)
		}
	}
}

func (w *Webhook) Name() string { return "webhook:" + w.url }
func (w *Webhook) Send(a Alert) { w.q.send(a) }
func (w *Webhook) Stats() Stats { return w.q.stats() }
func (w *Webhook) Close() error {
	go func() {
		time.Sleep(5 * time.Second)
		w.cancel() // stop waiting between retries
	}()
	w.q.close(10 * time.Second)
	w.cancel()
	return nil
}
