package alert

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sample(i int) Alert {
	return Alert{Kind: "incident", Event: "open", ID: "attack.bruteforce", Incident: int64(i), Severity: "high", Title: `Password guessing: 12 refused CONNECTs from 10.5.127.10 "]\`,
		Count: 12, At: time.Date(2026, 1, 5, 8, 0, i, 0, time.UTC)}
}

var rfc5424 = regexp.MustCompile(`^<(\d+)>1 \S+Z \S+ iomtguard \d+ open \[iomtguard@32473 id="attack.bruteforce" incident="\d+" severity="high" status="open"\] (\{.*\})$`)

func TestSyslogUDPAndTCP(t *testing.T) {
	// UDP collector.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// TCP collector reading octet-counted frames.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tcpMsgs := make(chan string, 10)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		r := bufio.NewReader(c)
		for {
			n, err := r.ReadString(' ')
			if err != nil {
				return
			}
			size, _ := strconv.Atoi(strings.TrimSpace(n))
			b := make([]byte, size)
			if _, err := io.ReadFull(r, b); err != nil {
				return
			}
			tcpMsgs <- string(b)
		}
	}()
	u, _ := NewSyslog("udp://" + pc.LocalAddr().String())
	tc, _ := NewSyslog("tcp://" + l.Addr().String())
	for i := 0; i < 3; i++ {
		u.Send(sample(i))
		tc.Send(sample(i))
	}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 3; i++ {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		check(t, string(buf[:n]))
		check(t, <-tcpMsgs)
	}
	u.Close()
	tc.Close()
	if s := tc.Stats(); s.Sent != 3 || s.Failed != 0 {
		t.Errorf("tcp stats %+v", s)
	}
}

func check(t *testing.T, msg string) {
	t.Helper()
	m := rfc5424.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("not RFC 5424 as expected: %q", msg)
	}
	if m[1] != "83" { // facility 10 * 8 + severity 3 (error) for high
		t.Errorf("PRI %s", m[1])
	}
	var a Alert
	if err := json.Unmarshal([]byte(m[2]), &a); err != nil || a.Count != 12 {
		t.Errorf("message JSON: %v %+v", err, a)
	}
}

// TestWebhookRetries: a collector that fails twice then accepts gets every
// alert once; a dead one never blocks Send, and its drops and failures are
// counted.
func TestWebhookRetries(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got []Alert
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(503)
			return
		}
		var a Alert
		json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	}))
	defer srv.Close()
	w, _ := NewWebhook(srv.URL)
	w.backoff = 20 * time.Millisecond
	for i := 0; i < 5; i++ {
		w.Send(sample(i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Sent < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	w.Close()
	if s := w.Stats(); s.Sent != 5 || s.Failed != 0 || len(got) != 5 || got[0].Incident != 0 || got[4].Incident != 4 {
		t.Errorf("stats %+v, got %d alerts", s, len(got))
	}

	dead, _ := NewWebhook("http://127.0.0.1:1/never")
	dead.backoff = time.Hour
	start := time.Now()
	for i := 0; i < 5000; i++ {
		dead.Send(sample(i))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("5000 sends to a dead webhook took %s", d)
	}
	if s := dead.Stats(); s.Dropped < 3000 {
		t.Errorf("dead webhook: %+v (the queue holds 1000)", s)
	}
	dead.Close()
}

func TestJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	j, err := NewJSONLines(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		j.Send(sample(i))
	}
	j.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "severity", "title", "status", "first_seen", "last_seen", "count"} {
			if _, ok := m[k]; !ok {
				t.Errorf("alert lacks %q: %s", k, l)
			}
		}
	}
	if len(lines) != 3 {
		t.Errorf("%d lines", len(lines))
	}
}
