package inventory

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Printable is s as a terminal, a log line or a comment may show it: as it
// is when every rune is printable on one line, else Go-quoted (client IDs
// and topics are what any client sends).
func Printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// File is an inventory as `analyze --inventory FILE.json` writes it.
type File struct {
	Tool      string    `json:"tool"`
	Generated time.Time `json:"generated"`
	Inputs    []string  `json:"inputs,omitempty"`
	Devices   []Device  `json:"devices"`
}

// WriteJSON writes devs as a File.
func WriteJSON(w io.Writer, inputs []string, generated time.Time, devs []Device) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(File{Tool: "iomtguard", Generated: generated, Inputs: inputs, Devices: devs})
}

// joinList writes a list in a cell: its elements joined by spaces, or, when
// one holds a space or is empty (a space would split it) or the first
// starts with '[', as a JSON array.
func joinList(xs []string) string {
	for i, x := range xs {
		if x == "" || strings.ContainsFunc(x, unicode.IsSpace) || i == 0 && strings.HasPrefix(x, "[") {
			b, _ := json.Marshal(xs)
			return string(b)
		}
	}
	return strings.Join(xs, " ")
}

func splitList(c string) []string {
	if strings.HasPrefix(c, "[") {
		var xs []string
		if json.Unmarshal([]byte(c), &xs) == nil {
			return xs
		}
	}
	return strings.Fields(c)
}

// CSVHeader are the columns of WriteCSV; lists are joined with spaces (or
// written as a JSON array when an element holds a space).
var CSVHeader = []string{"key", "client_id", "identity", "username", "role", "kind", "kind_evidence", "addresses", "macs",
	"mqtt_versions", "transport", "credential", "published", "subscribed", "brokers", "connects", "publishes",
	"payload_bytes", "publishes_per_minute", "first_seen", "last_seen"}

// cellOut keeps a spreadsheet from reading a cell as a formula (client IDs
// and topics are what any client sends): a cell that starts with = + - @
// or a tab or CR gets a leading '. cellIn takes it away.
func cellOut(c string) string {
	if c != "" && strings.ContainsRune("=+-@\t\r'", rune(c[0])) {
		return "'" + c
	}
	return c
}

func cellIn(c string) string {
	if len(c) >= 2 && c[0] == '\'' && strings.ContainsRune("=+-@\t\r'", rune(c[1])) {
		return c[1:]
	}
	return c
}

// WriteCSV writes one row per device (RFC 4180).
func WriteCSV(w io.Writer, devs []Device) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	for _, d := range devs {
		row := []string{d.Key, d.ClientID, d.Identity, d.Username, d.Role, d.Kind, d.KindEvidence,
			joinList(d.Addrs), joinList(d.MACs), joinList(d.Versions), d.Transport, d.Credential,
			joinList(d.Published), joinList(d.Subscribed), joinList(d.Brokers),
			strconv.FormatInt(d.Connects, 10), strconv.FormatInt(d.Publishes, 10), strconv.FormatInt(d.Bytes, 10),
			strconv.FormatFloat(d.RatePerMin, 'f', 2, 64), d.FirstSeen.Format(time.RFC3339Nano), d.LastSeen.Format(time.RFC3339Nano)}
		for i, c := range row {
			row[i] = cellOut(c)
		}
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

// ReadJSON reads the devices of an inventory: a File, a bare list of
// devices, or an analysis.json (whose "inventory" holds them).
func ReadJSON(r io.Reader) ([]Device, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<30))
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		var list []Device
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("not an inventory: %w", err)
		}
		return list, nil
	}
	var doc struct {
		Devices   *[]Device        `json:"devices"`
		Inventory *[]Device        `json:"inventory"`
		Overview  *json.RawMessage `json:"overview"` // an analysis.json
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not an inventory (iomtguard analyze --inventory FILE.json, or an analysis.json): %w", err)
	}
	switch {
	case doc.Devices != nil:
		return *doc.Devices, nil
	case doc.Inventory != nil:
		return *doc.Inventory, nil
	case doc.Overview != nil:
		return []Device{}, nil // an analysis.json of a capture without devices
	}
	return nil, errors.New(`not an inventory: no "devices" (iomtguard analyze --inventory FILE.json) nor "inventory" (analysis.json)`)
}

// ReadCSV reads what WriteCSV wrote (columns by header name; unknown
// columns are ignored, a missing "key" column is an error).
func ReadCSV(r io.Reader) ([]Device, error) {
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("not an inventory CSV: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	if _, ok := col["key"]; !ok {
		return nil, errors.New(`not an inventory CSV: no "key" column (iomtguard analyze --inventory FILE.csv writes one)`)
	}
	var out []Device
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("inventory CSV: %w", err)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return cellIn(rec[i])
			}
			return ""
		}
		list := func(name string) []string { return splitList(get(name)) }
		num := func(name string) int64 { n, _ := strconv.ParseInt(get(name), 10, 64); return n }
		d := Device{Key: get("key"), ClientID: get("client_id"), Identity: get("identity"), Username: get("username"),
			Role: get("role"), Kind: get("kind"), KindEvidence: get("kind_evidence"), Addrs: list("addresses"), MACs: list("macs"),
			Versions: list("mqtt_versions"), Transport: get("transport"), Credential: get("credential"), Published: list("published"),
			Subscribed: list("subscribed"), Brokers: list("brokers"), Connects: num("connects"), Publishes: num("publishes"), Bytes: num("payload_bytes")}
		d.RatePerMin, _ = strconv.ParseFloat(get("publishes_per_minute"), 64)
		d.FirstSeen, _ = time.Parse(time.RFC3339Nano, get("first_seen"))
		d.LastSeen, _ = time.Parse(time.RFC3339Nano, get("last_seen"))
		if d.Key == "" {
			return nil, fmt.Errorf("inventory CSV line %d: no key", line)
		}
		out = append(out, d)
	}
}

// Diff is what changed between two inventories.
type Diff struct {
	New     []Device `json:"new"`
	Gone    []Device `json:"gone"`
	Changed []Change `json:"changed"`
}

// Change is one device seen in both, with what is different.
type Change struct {
	Key     string   `json:"key"`
	Kind    string   `json:"kind"`
	Changes []string `json:"changes"`
	// Worse is set when a change weakens the device's security: TLS lost,
	// a weaker credential, new brokers or topics (a device that starts to
	// talk to new peers is what a compromised or cloned one does).
	Worse bool `json:"worse"`
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool { return len(d.New) == 0 && len(d.Gone) == 0 && len(d.Changed) == 0 }

// credStrength orders credential kinds from none to a certificate.
var credStrength = map[string]int{"none": 0, "username": 1, "password": 2, "unknown": 3, "certificate": 4}

// Compare lists the devices of b that a has not (new), those of a that b
// has not (gone), and what changed for those in both, by key.
func Compare(a, b []Device) Diff {
	old := map[string]*Device{}
	for i := range a {
		old[a[i].Key] = &a[i]
	}
	var d Diff
	seen := map[string]bool{}
	for i := range b {
		n := &b[i]
		seen[n.Key] = true
		o := old[n.Key]
		if o == nil {
			d.New = append(d.New, *n)
			continue
		}
		if c := compareDevice(o, n); len(c.Changes) > 0 {
			d.Changed = append(d.Changed, c)
		}
	}
	for i := range a {
		if !seen[a[i].Key] {
			d.Gone = append(d.Gone, a[i])
		}
	}
	byKey := func(x, y Device) int { return strings.Compare(x.Key, y.Key) }
	slices.SortFunc(d.New, byKey)
	slices.SortFunc(d.Gone, byKey)
	slices.SortFunc(d.Changed, func(x, y Change) int { return strings.Compare(x.Key, y.Key) })
	return d
}

func compareDevice(o, n *Device) Change {
	c := Change{Key: n.Key, Kind: n.Kind}
	add := func(worse bool, format string, a ...any) {
		c.Changes = append(c.Changes, fmt.Sprintf(format, a...))
		c.Worse = c.Worse || worse
	}
	if o.Transport != n.Transport {
		add(o.Transport == "tls", "transport %s → %s", o.Transport, n.Transport)
	}
	if o.Credential != n.Credential {
		add(credStrength[n.Credential] < credStrength[o.Credential], "credential %s → %s", o.Credential, n.Credential)
	}
	// An identity or a username that changes from one to another is
	// another device behind the same client ID; one that appears where the
	// connection was not readable (or with TLS) is not.
	if o.Identity != n.Identity {
		add(o.Identity != "" && n.Identity != "" || o.Identity != "" && n.Transport != "tls", "identity %q → %q", o.Identity, n.Identity)
	}
	if o.Username != n.Username {
		add(o.Username != "" && n.Username != "", "username %q → %q", o.Username, n.Username)
	}
	if o.Role != n.Role {
		add(false, "role %s → %s", o.Role, n.Role)
	}
	if o.Kind != n.Kind {
		add(false, "kind %s → %s", o.Kind, n.Kind)
	}
	for _, l := range []struct {
		what  string
		worse bool
		a, b  []string
	}{
		{"addresses", false, o.Addrs, n.Addrs}, {"MACs", true, o.MACs, n.MACs}, {"MQTT versions", false, o.Versions, n.Versions},
		{"brokers", true, o.Brokers, n.Brokers}, {"topics published", true, o.Published, n.Published},
		{"filters subscribed", true, o.Subscribed, n.Subscribed},
	} {
		if added := missing(l.b, l.a); len(added) > 0 {
			add(l.worse, "new %s: %s", l.what, strings.Join(added, ", "))
		}
		if lost := missing(l.a, l.b); len(lost) > 0 {
			add(false, "%s no longer seen: %s", l.what, strings.Join(lost, ", "))
		}
	}
	return c
}

// missing returns the elements of a that b lacks, in a's order.
func missing(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
