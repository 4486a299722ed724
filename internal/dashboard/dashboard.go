// Package dashboard serves watch's live view: a web page embedded in the
// binary (no CDN, no request anywhere else: it works on an air-gapped
// ward), updated by Server-Sent Events every second, with the status and
// drops, live rates, the incidents with their evidence and the defence,
// the inventory, the tables and the graph of the last 5 minutes, hour or
// day, and the traffic forecast. Read-only. It binds to loopback unless
// told otherwise, and then requires a token. /metrics (Prometheus) and
// /healthz are beside it.
package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed static
var static embed.FS

// MaxClients bounds the pages following the live stream at once.
const MaxClients = 32

// Options of a dashboard server.
type Options struct {
	// Addr to listen on (default 127.0.0.1:9109).
	Addr string
	// Token, required on any address that is not loopback (a random one is
	// made and returned by Start when it is empty there).
	Token string
	// Snapshot returns the view to show (JSON-encodable), called once a
	// second.
	Snapshot func() any
	// Views, when set, lists the views a page may choose (a hub's sites),
	// and SnapshotOf returns one of them ("" is the first); the page sends
	// ?view=NAME. Only views listed are served, so a page cannot make the
	// server compute views without end.
	Views      func() []string
	SnapshotOf func(view string) any
	// Handlers are more read-only endpoints (path -> handler), behind the
	// same token and headers.
	Handlers map[string]http.Handler
	// Health returns the health status ("ok" or what is wrong) and details.
	Health func() (string, any)
	// Registry holds the Prometheus metrics (nil: /metrics is not served).
	Registry *prometheus.Registry
	// Title names the page (a ward, a sensor).
	Title string
}

// Server is a running dashboard.
type Server struct {
	opts    Options
	ln      net.Listener
	srv     *http.Server
	mu      sync.Mutex
	clients map[chan []byte]string // each page's view
	latest  map[string][]byte
	at      map[string]time.Time // when each view's latest was made
	stop    chan struct{}
	URL     string
}

// Loopback reports whether addr's host is a loopback address (or empty
// host, which is not: it listens everywhere).
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Start listens and serves. It returns the token in force ("" on loopback
// without one).
func Start(opts Options) (*Server, string, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:9109"
	}
	if opts.Title == "" {
		opts.Title = "iomtguard watch"
	}
	if !Loopback(opts.Addr) && opts.Token == "" {
		b := make([]byte, 16)
		rand.Read(b)
		opts.Token = hex.EncodeToString(b)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, "", fmt.Errorf("dashboard: %w", err)
	}
	s := &Server{opts: opts, ln: ln, clients: map[chan []byte]string{}, latest: map[string][]byte{}, at: map[string]time.Time{}, stop: make(chan struct{})}
	s.URL = "http://" + ln.Addr().String() + "/"
	mux := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	files := http.FileServer(http.FS(sub))
	mux.Handle("/", files)
	mux.HandleFunc("/api/snapshot", s.snapshot)
	mux.HandleFunc("/events", s.events)
	mux.HandleFunc("/healthz", s.health)
	if opts.Registry != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	}
	for path, h := range opts.Handlers {
		mux.Handle(path, h)
	}
	s.srv = &http.Server{Handler: s.guard(mux), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go s.srv.Serve(ln)
	go s.loop()
	return s, opts.Token, nil
}

// guard makes the server read-only, checks the token, and sets the
// headers that keep the page to its own origin.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		if tok := s.opts.Token; tok != "" {
			got := ""
			if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
				got = strings.TrimPrefix(h, "Bearer ")
			} else if q := r.URL.Query().Get("token"); q != "" {
				got = q
				// The page's own requests (the live stream) carry it as a cookie.
				http.SetCookie(w, &http.Cookie{Name: "iomtguard_token", Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			} else if c, err := r.Cookie("iomtguard_token"); err == nil {
				got = c.Value
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(tok)) != 1 {
				http.Error(w, "a token is needed: open the URL watch printed (…/?token=…)", http.StatusUnauthorized)
				return
			}
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// loop encodes the snapshot once a second and sends it to every page.
func (s *Server) loop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	s.refresh()
	for {
		select {
		case <-t.C:
			s.refresh()
		case <-s.stop:
			return
		}
	}
}

// refresh encodes the snapshot of every view a page follows (and the
// first view, for /api/snapshot) and sends it to those pages.
func (s *Server) refresh() {
	s.mu.Lock()
	views := map[string]bool{"": true}
	for _, v := range s.clients {
		views[v] = true
	}
	s.mu.Unlock()
	for v := range views {
		b := s.refreshView(v)
		if b == nil {
			continue
		}
		s.mu.Lock()
		for c, cv := range s.clients {
			if cv != v {
				continue
			}
			select {
			case c <- b:
			default: // a page that does not keep up misses this one
			}
		}
		s.mu.Unlock()
	}
}

// view is the view a request asks for: "" or one of Views.
func (s *Server) view(r *http.Request) (string, bool) {
	v := r.URL.Query().Get("view")
	if v == "" || s.opts.Views == nil {
		return "", v == ""
	}
	for _, ok := range s.opts.Views() {
		if ok == v {
			return v, true
		}
	}
	return "", false
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	v, ok := s.view(r)
	if !ok {
		http.Error(w, "no such view", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	b, at := s.latest[v], s.at[v]
	s.mu.Unlock()
	if b == nil || time.Since(at) > 2*time.Second {
		// A view no page follows is not refreshed by the loop.
		if nb := s.refreshView(v); nb != nil {
			b = nb
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// refreshView encodes one view now and keeps it as the latest (nil when it
// cannot be encoded).
func (s *Server) refreshView(v string) []byte {
	var snap any
	if s.opts.SnapshotOf != nil {
		snap = s.opts.SnapshotOf(v)
	} else {
		snap = s.opts.Snapshot()
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	s.latest[v], s.at[v] = b, time.Now()
	s.mu.Unlock()
	return b
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	v, ok := s.view(r)
	if !ok {
		http.Error(w, "no such view", http.StatusNotFound)
		return
	}
	c := make(chan []byte, 1)
	s.mu.Lock()
	if len(s.clients) >= MaxClients {
		s.mu.Unlock()
		http.Error(w, "too many pages follow this dashboard", http.StatusServiceUnavailable)
		return
	}
	s.clients[c] = v
	first := s.latest[v]
	s.mu.Unlock()
	if first == nil {
		first = s.refreshView(v)
	}
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	send := func(b []byte) error {
		if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", b); err != nil {
			return err
		}
		fl.Flush()
		return nil
	}
	if first != nil && send(first) != nil {
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case b := <-c:
			if send(b) != nil {
				return
			}
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	status, details := "ok", any(nil)
	if s.opts.Health != nil {
		status, details = s.opts.Health()
	}
	w.Header().Set("Content-Type", "application/json")
	if status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"status": status, "details": details})
}

// Close stops the server.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	err := s.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Addr is the address served.
func (s *Server) Addr() string { return s.ln.Addr().String() }
