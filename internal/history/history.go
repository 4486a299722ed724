// Package history keeps what watch (and the hub) saw, in an embedded SQLite
// database (pure Go, WAL): incidents, the device inventory, and the
// analysis State of every minute, so that `iomtguard report --db` writes
// the report of any period and a restart, even after kill -9, goes on with
// every incident and device it had stored.
//
// Writes go through one goroutine with a bounded queue: incidents and
// inventory changes are committed before they are announced (the caller
// passes what to do after the commit), minute States are batched. A
// retention period deletes what is older.
package history

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite"

	"github.com/iomtguard/iomtguard/internal/analysis"
	"github.com/iomtguard/iomtguard/internal/incident"
	"github.com/iomtguard/iomtguard/internal/inventory"
)

const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
	seq INTEGER PRIMARY KEY, source TEXT NOT NULL DEFAULT '', finding TEXT NOT NULL, severity TEXT NOT NULL, status TEXT NOT NULL,
	first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, count INTEGER NOT NULL, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS incidents_last ON incidents(last_seen);
CREATE TABLE IF NOT EXISTS devices (
	source TEXT NOT NULL DEFAULT '', key TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, json TEXT NOT NULL,
	PRIMARY KEY (source, key));
CREATE TABLE IF NOT EXISTS minutes (
	source TEXT NOT NULL DEFAULT '', run INTEGER NOT NULL, minute INTEGER NOT NULL, frames INTEGER NOT NULL, state BLOB NOT NULL,
	PRIMARY KEY (source, run, minute));
CREATE INDEX IF NOT EXISTS minutes_time ON minutes(minute);
CREATE TABLE IF NOT EXISTS facts (
	source TEXT NOT NULL, run INTEGER NOT NULL, seq INTEGER NOT NULL, minute INTEGER NOT NULL, json TEXT NOT NULL,
	PRIMARY KEY (source, run, seq));
CREATE INDEX IF NOT EXISTS facts_minute ON facts(minute);
CREATE TABLE IF NOT EXISTS sensor_runs (
	source TEXT NOT NULL, run INTEGER NOT NULL, max_seq INTEGER NOT NULL, PRIMARY KEY (source, run));
CREATE TABLE IF NOT EXISTS sensor_incidents (
	source TEXT NOT NULL, run INTEGER NOT NULL, sensor_seq INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (source, run, sensor_seq));
`

// DB is a history database.
type DB struct {
	db      *sql.DB
	path    string
	q       chan op
	done    chan struct{}
	closing sync.Once
	err     atomic.Pointer[error]
	Dropped atomic.Int64 // minute States not stored: the queue was full
	Written atomic.Int64
	failed  atomic.Int64 // commits that failed

	factsFloor atomic.Int64 // Retain deletes facts older than this minute
	// Damaged counts stored minutes Minutes skipped: they could not be
	// decoded (DamageNote says the last one).
	Damaged    atomic.Int64
	lastDamage atomic.Value
	// Patient makes a minute State wait for room in the queue rather
	// than be dropped (a replay, which has no live traffic to keep up with).
	Patient bool
	queued  atomic.Int64 // bytes of encoded minute States waiting

	putMinute, putRun, putFacts *sql.Stmt
	states                      atomic.Int64 // minute States waiting to be encoded
}

// MaxQueuedBytes bounds the bytes of minute States waiting to be written:
// a slow disk costs minutes of history (counted in Dropped), not memory.
const MaxQueuedBytes = 16 << 20

// MaxQueuedStates bounds the minute States waiting to be encoded (a
// minute's State holds its Figure 1 values: about a megabyte at 20,000
// frames a second).
const MaxQueuedStates = 32

type op struct {
	fn     func(*sql.Tx) error
	after  func() // run once committed
	sync   chan error
	size   int64 // bytes counted in queued
	states int64 // States counted in states
}

// Open opens (creating) the database at path.
func Open(path string) (*DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(on)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // one writer; SQLite serialises anyway
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	h := &DB{db: db, path: path, q: make(chan op, 4096), done: make(chan struct{})}
	// Statements prepared once: preparing each write was a tenth of a hub's
	// work at 400 messages a second.
	for _, p := range []struct {
		s   **sql.Stmt
		sql string
	}{{&h.putMinute, sqlPutMinute}, {&h.putRun, sqlPutRun}, {&h.putFacts, sqlPutFacts}} {
		if *p.s, err = db.Prepare(p.sql); err != nil {
			db.Close()
			return nil, fmt.Errorf("history %s: %w", path, err)
		}
	}
	go h.run()
	return h, nil
}

// run commits queued writes, several per transaction when they queue up.
func (h *DB) run() {
	defer close(h.done)
	for o := range h.q {
		batch := []op{o}
	more:
		for len(batch) < 256 {
			select {
			case o, ok := <-h.q:
				if !ok {
					break more
				}
				batch = append(batch, o)
			default:
				break more
			}
		}
		err := h.commit(batch)
		for _, o := range batch {
			h.queued.Add(-o.size)
			h.states.Add(-o.states)
			if o.sync != nil {
				o.sync <- err
			}
			if err == nil && o.after != nil {
				o.after()
			}
		}
		if err != nil {
			h.err.Store(&err)
			h.failed.Add(1)
		}
	}
}

func (h *DB) commit(batch []op) error {
	tx, err := h.db.Begin()
	if err != nil {
		return err
	}
	for _, o := range batch {
		if err := o.fn(tx); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	h.Written.Add(int64(len(batch)))
	return nil
}

// Path is the database file.
func (h *DB) Path() string { return h.path }

// Err is the last write error (nil: none).
func (h *DB) Err() error {
	if p := h.err.Load(); p != nil {
		return *p
	}
	return nil
}

// enqueue queues a write; important ones wait for room, others are
// dropped (and counted) when the queue is full.
func (h *DB) enqueue(o op, important bool) {
	if important {
		h.q <- o
		return
	}
	select {
	case h.q <- o:
	default:
		h.queued.Add(-o.size)
		h.states.Add(-o.states)
		h.Dropped.Add(1)
	}
}

// Sync waits until every queued write is committed.
// It fails when any write queued before it failed, not only the last
// batch: what a hub acknowledges after Sync is committed.
func (h *DB) Sync() error {
	before := h.failed.Load()
	ch := make(chan error, 1)
	h.q <- op{fn: func(*sql.Tx) error { return nil }, sync: ch}
	if err := <-ch; err != nil {
		return err
	}
	if h.failed.Load() != before {
		return h.Err()
	}
	return nil
}

// Close commits what is queued and closes the database.
func (h *DB) Close() error {
	h.closing.Do(func() { close(h.q) })
	<-h.done
	return h.db.Close()
}

// SaveIncident stores an incident event; after runs once it is committed
// (announce it then: what was announced is stored).
func (h *DB) SaveIncident(source string, ev incident.Event, after func()) {
	in := ev.Incident
	b, _ := json.Marshal(in)
	h.enqueue(op{fn: func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO incidents(seq, source, finding, severity, status, first_seen, last_seen, count, json) VALUES (?,?,?,?,?,?,?,?,?)
			ON CONFLICT(seq) DO UPDATE SET severity=excluded.severity, status=excluded.status, last_seen=excluded.last_seen,
			count=excluded.count, json=excluded.json`,
			in.Seq, source, in.ID, string(in.Severity), string(in.Status), in.FirstSeen.UnixNano(), in.LastSeen.UnixNano(), in.Count, string(b))
		return err
	}, after: after}, true)
}

// SaveSensorIncident stores an incident event a sensor sent its hub. A
// sensor numbers its incidents itself (from 1 again when it restarts
// without a history), so the hub gives each (source, run, sensor's number)
// a number of its own, the first time it sees it, in the same transaction
// as the incident: the same event stored twice (a redelivery) changes
// nothing, and incidents of different sensors or runs never share a number.
func (h *DB) SaveSensorIncident(source string, run int64, ev incident.Event, after func()) {
	in := ev.Incident
	h.enqueue(op{fn: func(tx *sql.Tx) error {
		var seq int64
		err := tx.QueryRow(`SELECT seq FROM sensor_incidents WHERE source = ? AND run = ? AND sensor_seq = ?`, source, run, in.Seq).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			if err = tx.QueryRow(`SELECT COALESCE(MAX(seq), 0) + 1 FROM incidents`).Scan(&seq); err != nil {
				return err
			}
			_, err = tx.Exec(`INSERT INTO sensor_incidents(source, run, sensor_seq, seq) VALUES (?,?,?,?)`, source, run, in.Seq, seq)
		}
		if err != nil {
			return err
		}
		in := in
		in.Seq, in.Source = seq, source
		b, _ := json.Marshal(in)
		_, err = tx.Exec(`INSERT INTO incidents(seq, source, finding, severity, status, first_seen, last_seen, count, json) VALUES (?,?,?,?,?,?,?,?,?)
			ON CONFLICT(seq) DO UPDATE SET source=excluded.source, finding=excluded.finding, severity=excluded.severity, status=excluded.status,
			first_seen=excluded.first_seen, last_seen=excluded.last_seen, count=excluded.count, json=excluded.json`,
			seq, source, in.ID, string(in.Severity), string(in.Status), in.FirstSeen.UnixNano(), in.LastSeen.UnixNano(), in.Count, string(b))
		return err
	}, after: after}, true)
}

// SensorIncidents reads a source's incidents as that source numbered them
// in run (a hub restores its own group incidents with them).
func (h *DB) SensorIncidents(source string, run int64) ([]incident.Incident, error) {
	rows, err := h.db.Query(`SELECT s.sensor_seq, i.json FROM sensor_incidents s JOIN incidents i ON i.seq = s.seq
		WHERE s.source = ? AND s.run = ? ORDER BY s.sensor_seq`, source, run)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []incident.Incident
	for rows.Next() {
		var n int64
		var js string
		if err := rows.Scan(&n, &js); err != nil {
			return nil, err
		}
		var in incident.Incident
		if err := json.Unmarshal([]byte(js), &in); err != nil {
			return nil, err
		}
		in.Seq = n
		out = append(out, in)
	}
	return out, rows.Err()
}

// SaveSensorMinute stores a minute State already packed (State.Pack) and
// checked, the seq-th minute of a sensor's run: what a hub receives. The
// highest seq of each run is kept beside, so that Intervals can tell a
// minute that never arrived.
func (h *DB) SaveSensorMinute(source string, run, seq, minute, frames int64, blob []byte, after func()) {
	h.enqueue(op{fn: func(tx *sql.Tx) error {
		if err := h.putMinuteTx(tx, source, run, minute, frames, blob); err != nil {
			return err
		}
		_, err := tx.Stmt(h.putRun).Exec(source, run, seq)
		return err
	}, after: after}, true)
}

// SaveFacts stores a sensor's session facts of one minute (JSON), the
// seq-th event of its run; the hub reads them back (RecentFacts) to rebuild
// its cross-site detectors after a restart.
func (h *DB) SaveFacts(source string, run, seq, minute int64, js []byte, after func()) {
	h.enqueue(op{fn: func(tx *sql.Tx) error {
		_, err := tx.Stmt(h.putFacts).Exec(source, run, seq, minute, string(js))
		return err
	}, after: after}, true)
}

// RecentFacts calls fn with the facts stored for minute from on, in time
// order (Retain deletes the old ones).
func (h *DB) RecentFacts(from int64, fn func(source string, run, seq int64, js []byte) error) error {
	rows, err := h.db.Query(`SELECT source, run, seq, json FROM facts WHERE minute >= ? ORDER BY minute, source, run, seq`, from)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var src, js string
		var run, seq int64
		if err := rows.Scan(&src, &run, &seq, &js); err != nil {
			return err
		}
		if err := fn(src, run, seq, []byte(js)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// LastFactsMinute is the newest minute with stored facts (0: none).
func (h *DB) LastFactsMinute() int64 {
	var n sql.NullInt64
	h.db.QueryRow(`SELECT MAX(minute) FROM facts`).Scan(&n)
	return n.Int64
}

// LastMinute is the newest stored minute of a source ("" for all, "SITE/"
// for a site's sensors; 0: none).
func (h *DB) LastMinute(source string) int64 {
	var n sql.NullInt64
	q, args := sourceCond(`SELECT MAX(minute) FROM minutes WHERE 1`, nil, source)
	h.db.QueryRow(q, args...).Scan(&n)
	return n.Int64
}

// MaxSensorSeq is the highest number a source gave its incidents in run
// (0: none).
func (h *DB) MaxSensorSeq(source string, run int64) int64 {
	var n sql.NullInt64
	h.db.QueryRow(`SELECT MAX(sensor_seq) FROM sensor_incidents WHERE source = ? AND run = ?`, source, run).Scan(&n)
	return n.Int64
}

// SaveRunEnd notes how many minutes a sensor's run numbered in all (its
// last word): minutes lost at the end of a run count as lost.
func (h *DB) SaveRunEnd(source string, run, minutes int64, after func()) {
	h.enqueue(op{fn: func(tx *sql.Tx) error {
		_, err := tx.Stmt(h.putRun).Exec(source, run, minutes)
		return err
	}, after: after}, true)
}

// Interval accounting of one sensor run: Stored minutes of the Sent the
// sensor numbered (the highest number received); Sent - Stored were lost.
type RunIntervals struct {
	Source string `json:"source"`
	Run    int64  `json:"run"`
	Sent   int64  `json:"sent"`
	Stored int64  `json:"stored"`
}

// Intervals lists the sensor runs a hub received, with their accounting.
func (h *DB) Intervals() ([]RunIntervals, error) {
	rows, err := h.db.Query(`SELECT r.source, r.run, r.max_seq, (SELECT COUNT(*) FROM minutes m WHERE m.source = r.source AND m.run = r.run)
		FROM sensor_runs r ORDER BY r.source, r.run`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RunIntervals
	for rows.Next() {
		var r RunIntervals
		if err := rows.Scan(&r.Source, &r.Run, &r.Sent, &r.Stored); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Sources lists the sources with stored minutes, with how many each has.
func (h *DB) Sources() (map[string]int64, error) {
	rows, err := h.db.Query(`SELECT source, COUNT(*) FROM minutes GROUP BY source`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// SaveDevice stores a device (its latest view).
func (h *DB) SaveDevice(source string, d inventory.Device, after func()) {
	b, _ := json.Marshal(d)
	h.enqueue(op{fn: func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO devices(source, key, first_seen, last_seen, json) VALUES (?,?,?,?,?)
			ON CONFLICT(source, key) DO UPDATE SET last_seen=excluded.last_seen, json=excluded.json`,
			source, d.Key, d.FirstSeen.UnixNano(), d.LastSeen.UnixNano(), string(b))
		return err
	}, after: after}, true)
}

// SaveMinute stores the analysis State of one minute of a run (replacing
// what an earlier save of the same minute held: a minute is saved again as
// it fills). It encodes st before it returns: the caller may go on
// changing what st shares with its analyzer.
func (h *DB) SaveMinute(source string, run, minute int64, st *analysis.State) error {
	blob, err := st.Pack()
	if err != nil {
		return err
	}
	size := int64(len(blob))
	if !h.room(&h.queued, size, MaxQueuedBytes) {
		return nil
	}
	// The queued write holds the encoded bytes only (what MaxQueuedBytes
	// counts), not the State.
	frames := st.Summary.Frames
	h.enqueue(op{size: size, fn: func(tx *sql.Tx) error { return h.putMinuteTx(tx, source, run, minute, frames, blob) }}, h.Patient)
	return nil
}

// SaveClosedMinute stores the State of a minute that is over, as
// SaveMinute, but encodes it on the writer's goroutine (profiling watch
// with a history showed the encoding at a third of the consumers' time):
// st is the history's from then on, and must not change.
func (h *DB) SaveClosedMinute(source string, run, minute int64, st *analysis.State) {
	if !h.room(&h.states, 1, MaxQueuedStates) {
		return
	}
	h.enqueue(op{states: 1, fn: func(tx *sql.Tx) error {
		blob, err := st.Pack()
		if err != nil {
			return err
		}
		return h.putMinuteTx(tx, source, run, minute, st.Summary.Frames, blob)
	}}, h.Patient)
}

// room reserves n of a queue budget: it waits for room when the history
// is patient, else reports false (and counts a dropped minute).
func (h *DB) room(used *atomic.Int64, n, limit int64) bool {
	for used.Load()+n > limit {
		if !h.Patient {
			h.Dropped.Add(1)
			return false
		}
		time.Sleep(time.Millisecond)
	}
	used.Add(n)
	return true
}

const (
	sqlPutMinute = `INSERT INTO minutes(source, run, minute, frames, state) VALUES (?,?,?,?,?)
			ON CONFLICT(source, run, minute) DO UPDATE SET frames=excluded.frames, state=excluded.state`
	sqlPutRun = `INSERT INTO sensor_runs(source, run, max_seq) VALUES (?,?,?)
			ON CONFLICT(source, run) DO UPDATE SET max_seq = MAX(max_seq, excluded.max_seq)`
	sqlPutFacts = `INSERT INTO facts(source, run, seq, minute, json) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING`
)

func (h *DB) putMinuteTx(tx *sql.Tx, source string, run, minute, frames int64, blob []byte) error {
	_, err := tx.Stmt(h.putMinute).Exec(source, run, minute, frames, blob)
	return err
}

// SetMeta stores a setting.
func (h *DB) SetMeta(key, value string) {
	h.enqueue(op{fn: func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value`, key, value)
		return err
	}}, true)
}

// Meta reads a setting ("" when unset).
func (h *DB) Meta(key string) string {
	var v string
	h.db.QueryRow(`SELECT value FROM meta WHERE key=?`, key).Scan(&v)
	return v
}

// Retain deletes what is older than before (incidents closed before it,
// devices last seen before it, minutes before it).
func (h *DB) Retain(before time.Time) {
	ns := before.UnixNano()
	h.enqueue(op{fn: func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM incidents WHERE status='closed' AND last_seen < ?`, ns); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM devices WHERE last_seen < ?`, ns); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM minutes WHERE minute < ?`, before.Unix()/60); err != nil {
			return err
		}
		// A hub's: facts are kept two days at most (its detectors read the
		// last hour), runs and incident numbers as long as what they count.
		if _, err := tx.Exec(`DELETE FROM facts WHERE minute < ?`, max(before.Unix()/60, h.factsFloor.Load())); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM sensor_runs WHERE NOT EXISTS (SELECT 1 FROM minutes m WHERE m.source = sensor_runs.source AND m.run = sensor_runs.run)`); err != nil {
			return err
		}
		_, err := tx.Exec(`DELETE FROM sensor_incidents WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.seq = sensor_incidents.seq)`)
		return err
	}}, false)
}

// KeepFactsFrom sets the oldest minute of facts Retain keeps.
func (h *DB) KeepFactsFrom(minute int64) { h.factsFloor.Store(minute) }

// Incidents reads the incidents last seen at or after since (zero: all),
// newest first.
func (h *DB) Incidents(source string, since time.Time) ([]incident.Incident, error) {
	q := `SELECT json FROM incidents WHERE last_seen >= ?`
	args := []any{since.UnixNano()}
	q, args = sourceCond(q, args, source)
	rows, err := h.db.Query(q+` ORDER BY seq DESC`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []incident.Incident
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		var in incident.Incident
		if err := json.Unmarshal([]byte(s), &in); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// LastIncident is the highest incident number stored.
func (h *DB) LastIncident() int64 {
	var n sql.NullInt64
	h.db.QueryRow(`SELECT MAX(seq) FROM incidents`).Scan(&n)
	return n.Int64
}

// Devices reads the inventory.
func (h *DB) Devices(source string) ([]inventory.Device, error) {
	q, args := sourceCond(`SELECT json FROM devices WHERE 1`, nil, source)
	rows, err := h.db.Query(q+` ORDER BY key`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []inventory.Device
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		var d inventory.Device
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// sourceCond adds the condition on source to a query: none for "", a
// prefix for "SITE/" (every sensor of a hub's site), else equality.
func sourceCond(q string, args []any, source string) (string, []any) {
	switch {
	case source == "":
		return q, args
	case strings.HasSuffix(source, "/"):
		return q + ` AND substr(source, 1, ?) = ?`, append(args, len(source), source)
	}
	return q + ` AND source = ?`, append(args, source)
}

// DamageNote describes the last minute Minutes skipped ("" when none).
func (h *DB) DamageNote() string {
	s, _ := h.lastDamage.Load().(string)
	return s
}

// Minutes calls fn with every stored minute State from since on (zero:
// all), in time order.
func (h *DB) Minutes(source string, since time.Time, fn func(run, minute int64, st *analysis.State) error) error {
	q := `SELECT run, minute, state FROM minutes WHERE minute >= ?`
	args := []any{since.Unix() / 60}
	if since.IsZero() {
		args[0] = int64(-1 << 62)
	}
	q, args = sourceCond(q, args, source)
	rows, err := h.db.Query(q+` ORDER BY minute, run`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var run, minute int64
		var blob []byte
		if err := rows.Scan(&run, &minute, &blob); err != nil {
			return err
		}
		st, err := analysis.Unpack(blob)
		if err != nil {
			// A minute that cannot be decoded (a sensor's, checked but not
			// decoded by its hub) is skipped and counted: one bad minute
			// must not cost the whole report.
			h.Damaged.Add(1)
			h.lastDamage.Store(fmt.Sprintf("minute %d of %s: %v", minute, source, err))
			continue
		}
		if err := fn(run, minute, st); err != nil {
			return err
		}
	}
	return rows.Err()
}
