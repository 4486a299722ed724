package analysis

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Pack encodes a State compactly: JSON compressed at gzip's fastest level.
// It is the form the history stores minutes in, and the form in which a
// live day window keeps its closed hours (a quarter of a megabyte each as
// values, a few kilobytes packed; kept as values, the 24 of them were what
// made watch's memory climb through its first day).
func (st *State) Pack() ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := json.NewEncoder(zw).Encode(st); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxUnpacked bounds what Unpack inflates (a damaged or hostile blob must
// not inflate without end); the largest States, minutes holding their
// Figure 1 columns at the Describer's cap, are far below it.
const maxUnpacked = 512 << 20

// Unpack decodes what Pack wrote: the whole blob, its checksum verified; a
// State of another StateVersion is refused.
func Unpack(b []byte) (*State, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxUnpacked+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxUnpacked {
		return nil, fmt.Errorf("state larger than %d bytes unpacked", maxUnpacked)
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, err
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("state version %d, this iomtguard reads %d", st.Version, StateVersion)
	}
	return &st, nil
}

// CheckPacked verifies a packed State without decoding it: a whole gzip
// stream (its checksum), at most maxUnpacked bytes inflated, holding a
// State of this StateVersion. A hub checks what sensors send with it (the
// full decoding was half of a hub's work); Unpack decodes when the State
// is read, and a reader skips what it cannot decode. limit bounds the
// inflated size (0: Unpack's own bound).
func CheckPacked(b []byte, limit int64) error {
	if limit <= 0 || limit > maxUnpacked {
		limit = maxUnpacked
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	head := make([]byte, 64)
	n, err := io.ReadFull(zr, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	want := fmt.Sprintf(`{"version":%d,`, StateVersion)
	if !bytes.HasPrefix(head[:n], []byte(want)) {
		return fmt.Errorf("not a State of version %d", StateVersion)
	}
	rest, err := io.Copy(io.Discard, io.LimitReader(zr, limit+1))
	if err != nil {
		return err
	}
	if int64(n)+rest > limit {
		return fmt.Errorf("state larger than %d bytes unpacked", limit)
	}
	return nil
}

// Sketched is st with its Figure 1 columns' values moved into sketches
// (stats.DescriberState.Sketched): what a sensor sends when the exact
// minute would not fit in one message; the Result then states the
// quartiles' error bound, as it does for any column past its cap.
func (st *State) Sketched() *State {
	c := *st
	for i := range c.All {
		c.All[i] = c.All[i].Sketched()
		c.MQ[i] = c.MQ[i].Sketched()
	}
	return &c
}
