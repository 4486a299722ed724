package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// record is one message waiting for the hub's acknowledgement.
type record struct {
	Subject string              `json:"subject"`
	Header  map[string][]string `json:"header"`
	Body    []byte              `json:"-"`
	size    int64
	name    string // its file in a disk spool
}

// spool holds a sensor's messages, in order, until the hub acknowledges
// them: on disk (one file per message, written whole then renamed, so a
// crash leaves whole messages; a restarted sensor sends what its last run
// left) or in memory. Its size is bounded; past the bound new messages are
// refused and the sensor counts them.
type spool struct {
	dir string
	max int64

	mu     sync.Mutex
	cond   *sync.Cond
	recs   []*record // oldest first; on disk without Body
	bytes  int64
	next   uint64
	closed bool
}

func openSpool(dir string, limit int64) (*spool, error) {
	s := &spool{dir: dir, max: limit}
	s.cond = sync.NewCond(&s.mu)
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".tmp") {
			os.Remove(filepath.Join(dir, n)) // a write the last run did not finish
			continue
		}
		if strings.HasSuffix(n, ".msg") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		num, err := strconv.ParseUint(strings.TrimSuffix(n, ".msg"), 16, 64)
		if err != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		s.recs = append(s.recs, &record{name: n, size: fi.Size()})
		s.bytes += fi.Size()
		s.next = max(s.next, num+1)
	}
	return s, nil
}

// push appends r; false when the spool is full or closed.
func (s *spool) push(r *record) (bool, error) {
	meta, _ := json.Marshal(r)
	r.size = int64(len(meta) + 1 + len(r.Body))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.bytes+r.size > s.max {
		return false, nil
	}
	if s.dir != "" {
		r.name = fmt.Sprintf("%016x.msg", s.next)
		path := filepath.Join(s.dir, r.name)
		var buf bytes.Buffer
		buf.Write(meta)
		buf.WriteByte('\n')
		buf.Write(r.Body)
		if err := os.WriteFile(path+".tmp", buf.Bytes(), 0o600); err != nil {
			return false, err
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return false, err
		}
		r = &record{name: r.name, size: r.size}
	}
	s.next++
	s.recs = append(s.recs, r)
	s.bytes += r.size
	s.cond.Broadcast()
	return true, nil
}

// peek waits for the oldest record (nil once closed and empty).
func (s *spool) peek() (*record, error) {
	s.mu.Lock()
	for len(s.recs) == 0 && !s.closed {
		s.cond.Wait()
	}
	if len(s.recs) == 0 {
		s.mu.Unlock()
		return nil, nil
	}
	r := s.recs[0]
	s.mu.Unlock()
	if s.dir == "" {
		return r, nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, r.name))
	if err != nil {
		return &record{name: r.name, size: r.size}, err
	}
	meta, body, ok := bytes.Cut(b, []byte{'\n'})
	out := &record{name: r.name, size: r.size}
	if !ok || json.Unmarshal(meta, out) != nil || out.Subject == "" {
		return out, errors.New("spool: damaged message " + r.name)
	}
	out.Body = body
	return out, nil
}

// pop removes the oldest record (r, as peek gave it).
func (s *spool) pop(r *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recs) == 0 || (s.dir != "" && s.recs[0].name != r.name) || (s.dir == "" && s.recs[0] != r) {
		return
	}
	s.bytes -= s.recs[0].size
	s.recs[0] = nil
	s.recs = s.recs[1:]
	if s.dir != "" {
		os.Remove(filepath.Join(s.dir, r.name))
	}
	s.cond.Broadcast()
}

// waitEmpty waits until every record is acknowledged or stop is closed.
func (s *spool) waitEmpty(stop <-chan struct{}) {
	done := make(chan struct{})
	go func() {
		select {
		case <-stop:
			s.mu.Lock()
			s.cond.Broadcast()
			s.mu.Unlock()
		case <-done:
		}
	}()
	defer close(done)
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.recs) > 0 {
		select {
		case <-stop:
			return
		default:
		}
		s.cond.Wait()
	}
}

func (s *spool) close() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *spool) len() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs), s.bytes
}
