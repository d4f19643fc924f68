package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// lanes is the number of priorities; Priority.lane gives each its index.
const lanes = 2

// keyLen is the length of a readyKey.
const keyLen = 1 + 8 + 8

// readyKey orders bucketReady: lane (1 byte), the moment the message becomes ready
// (unix nanoseconds, big-endian), its sequence number (big-endian). A cursor thus reads
// the High lane first and, within a lane, by due time, then enqueue order.
type readyKey [keyLen]byte

func newReadyKey(p Priority, at int64, seq uint64) readyKey {
	var k readyKey
	k[0] = byte(p.lane())
	binary.BigEndian.PutUint64(k[1:9], uint64(max(at, 0)))
	binary.BigEndian.PutUint64(k[9:], seq)
	return k
}

func (k readyKey) lane() int   { return int(k[0]) }
func (k readyKey) at() int64   { return int64(binary.BigEndian.Uint64(k[1:9])) }
func (k readyKey) seq() uint64 { return binary.BigEndian.Uint64(k[9:]) }

// next returns the smallest key greater than k.
func (k readyKey) next() readyKey {
	for i := len(k) - 1; i >= 0; i-- {
		k[i]++
		if k[i] != 0 {
			break
		}
	}
	return k
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// A lease is a reservation of one message, in memory only.
type lease struct {
	key      readyKey
	token    uint64
	deadline time.Time
	index    int // position in Bolt.expiry; -1 while being settled
}

// receipt is hex(key) "." token in base 36.
func (l *lease) receipt() string {
	return hex.EncodeToString(l.key[:]) + "." + strconv.FormatUint(l.token, 36)
}

func parseReceipt(r string) (readyKey, uint64, error) {
	var k readyKey
	h, t, ok := strings.Cut(r, ".")
	if !ok || hex.DecodedLen(len(h)) != keyLen {
		return k, 0, fmt.Errorf("queue: malformed receipt %q", r)
	}
	if _, err := hex.Decode(k[:], []byte(h)); err != nil {
		return k, 0, fmt.Errorf("queue: malformed receipt %q", r)
	}
	tok, err := strconv.ParseUint(t, 36, 64)
	if err != nil {
		return k, 0, fmt.Errorf("queue: malformed receipt %q", r)
	}
	return k, tok, nil
}

// leaseHeap orders leases by deadline (container/heap).
type leaseHeap []*lease

func (h leaseHeap) Len() int           { return len(h) }
func (h leaseHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *leaseHeap) Push(x any) {
	l := x.(*lease)
	l.index = len(*h)
	*h = append(*h, l)
}
func (h *leaseHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.index = -1
	return l
}

// messageFormat versions the encoding of stored messages.
const messageFormat = 1

// encodeMessage lays m out as: format byte, ID, Kind (uvarint length + bytes),
// priority byte, NotBefore (varint unix nanoseconds, 0 for none), Attempts (uvarint),
// LastError (uvarint length + bytes), then Body to the end.
func encodeMessage(m Message) []byte {
	b := make([]byte, 0, 1+len(m.ID)+len(m.Kind)+len(m.LastError)+len(m.Body)+24)
	b = append(b, messageFormat)
	b = appendString(b, m.ID)
	b = appendString(b, m.Kind)
	b = append(b, byte(m.Priority))
	var nb int64
	if !m.NotBefore.IsZero() {
		nb = m.NotBefore.UnixNano()
	}
	b = binary.AppendVarint(b, nb)
	b = binary.AppendUvarint(b, uint64(max(m.Attempts, 0)))
	b = appendString(b, m.LastError)
	return append(b, m.Body...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorrupt = errors.New("corrupt message")

// decodeMessage reverses encodeMessage, copying everything out of b (which may be
// bbolt's memory, valid only during its transaction).
func decodeMessage(b []byte) (Message, error) {
	var m Message
	if len(b) < 1 || b[0] != messageFormat {
		return m, errCorrupt
	}
	r := bytes.NewReader(b[1:])
	var err error
	if m.ID, err = readString(r); err != nil {
		return m, err
	}
	if m.Kind, err = readString(r); err != nil {
		return m, err
	}
	p, err := r.ReadByte()
	if err != nil {
		return m, errCorrupt
	}
	m.Priority = Priority(p)
	nb, err := binary.ReadVarint(r)
	if err != nil {
		return m, errCorrupt
	}
	if nb != 0 {
		m.NotBefore = time.Unix(0, nb)
	}
	att, err := binary.ReadUvarint(r)
	if err != nil {
		return m, errCorrupt
	}
	m.Attempts = int(att)
	if m.LastError, err = readString(r); err != nil {
		return m, err
	}
	if r.Len() > 0 {
		m.Body = make([]byte, r.Len())
		_, _ = r.Read(m.Body)
	}
	return m, nil
}

func readString(r *bytes.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(r.Len()) {
		return "", errCorrupt
	}
	s := make([]byte, n)
	_, _ = r.Read(s)
	return string(s), nil
}
