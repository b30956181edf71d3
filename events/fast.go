package events

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/runstep/runstep/lifecycle"
)

// The fast path. Profiling replay showed encoding/json taking nine tenths
// of the time (lifecycle's UnmarshalJSON methods decode each event three
// times over: envelope, step, details), so a line in exactly the form
// Writer writes (its keys in its order, no spaces, function tool calls) is
// decoded here, in one pass and with few allocations. Anything else —
// other spacing or key order, code interpreter or file search calls,
// lenient forms of real traffic, and every error — falls back to
// decodeEventStd, the reference. A fuzz test holds the two to the same
// result on any input.
//
// A Reader keeps one decoder for all its lines, which makes a log cheaper
// to decode than its lines one by one. What a line costs is mostly what
// it allocates and the strings it reads:
//
//   - Strings repeat from line to line: a run's id, thread and assistant
//     are on each of its events and its steps', a step's id and details
//     on its two or three. The decoder compares what a field says with
//     what it said last (its memo), then looks up a table of fixed size
//     of the strings of the last lines; a string it has seen, it gives
//     again. Strings are immutable, so sharing them is safe; and a log of
//     a million events holds each id once, not in a copy of every line
//     that names it.
//   - The strings of a line that neither has are copied together, into
//     one allocation for the line.
//   - A step (or run) and what its pointers point to are few structs,
//     allocated a few dozen at a time, and no larger than the event needs.
//     Each event still has memory of its own: the decoder never touches
//     it again once it returns it, and the caller may keep it and change
//     it.
//   - Strings and numbers are read eight bytes at a time.

const (
	// internSlots is how many strings a decoder remembers (a power of
	// two): one a slot, chosen by hash, the last one wins. Ids come back
	// within a few lines, so a small table keeps nearly all that repeat.
	internSlots = 4096
	// maxIntern is the longest string remembered: longer ones (tool
	// arguments and outputs) are rarely seen twice and cost more to hash.
	maxIntern = 256
	// slabBytes is how much memory a decoder allocates for steps (or
	// runs, or tool calls) at once: a size the allocator has a class of
	// its own for, so that none of it is lost.
	slabBytes = 16 << 10
)

// decoder decodes lines in the form Writer writes. The zero decoder
// remembers nothing from one line to the next; newDecoder's does.
type decoder struct {
	// The line being decoded, read from i on. Once bad, every read fails
	// and returns a zero value, so the caller checks once at the end.
	b   []byte
	i   int
	bad bool

	strs []string // the strings last seen, by hash; nil: none kept
	seed maphash.Seed
	last *[fields]memo // each field's last string; nil with strs
	buf  []byte        // the line's new strings, unescaped
	fix  []fixup       // where they go, once buf is a string

	steps  slab[stepBox]
	runs   slab[runBox]
	calls  slab[callBox]
	msgs   slab[lifecycle.MessageCreation]
	usages slab[usageBox]
}

// slab allocates Ts slabBytes at a time (one at a time for a decoder of
// one line), and hands them out one by one.
type slab[T any] struct{ free []T }

// next returns a zero T, the same one until take is called.
func (s *slab[T]) next(d *decoder) *T {
	if len(s.free) == 0 {
		n := 1
		if d.strs != nil {
			var t T
			n = max(1, slabBytes/int(unsafe.Sizeof(t)))
		}
		s.free = make([]T, n)
	}
	return &s.free[0]
}

// take hands out the T next returned: it is the caller's.
func (s *slab[T]) take() { s.free = s.free[1:] }

// drop empties the T next returned, for the next line.
func (s *slab[T]) drop() {
	var zero T
	s.free[0] = zero
}

// get returns a zero T of the caller's.
func (s *slab[T]) get(d *decoder) *T {
	p := s.next(d)
	s.take()
	return p
}

// field names a string field of steps and runs, for its memo.
type field int

const (
	fieldRunID field = iota // a run's id, and a step's run_id
	fieldAssistant
	fieldThread
	fieldStepID
	fieldCallID
	fieldFunction
	fieldArguments
	fieldOutput
	fieldMessage
	fieldErrorCode
	fieldErrorMessage
	fields
)

// memo is the last string a field had: what the line said (raw, before
// unescaping) and the string it made. The next line most often says the
// same: then one comparison finds it, before any scan or hash.
type memo struct {
	raw []byte
	val string
}

// fixup says where a piece of buf goes, the slot of strs that remembers
// it (-1: none), and the field and piece of the line it was read from.
type fixup struct {
	dst        *string
	start, end int
	slot       int
	field      field
	raw        [2]int
}

func newDecoder() *decoder {
	return &decoder{strs: make([]string, internSlots), seed: maphash.MakeSeed(), last: new([fields]memo)}
}

// decodeCanonical decodes b if it is exactly in the form Writer writes,
// and reports whether it did, remembering nothing of it.
func decodeCanonical(b []byte) (Event, bool) {
	d := oneLine.Get().(*decoder)
	defer oneLine.Put(d)
	return d.canonical(b)
}

// oneLine holds zero decoders, whose lists of fixups and buffers grow
// once, not once a line.
var oneLine = sync.Pool{New: func() any { return new(decoder) }}

// decode decodes one line: by the fast path if it can, else by the
// reference.
func (d *decoder) decode(b []byte) (Event, *LogError) {
	if ev, ok := d.canonical(b); ok {
		return ev, nil
	}
	return decodeEventStd(b)
}

// canonical decodes b if it is exactly in the form Writer writes, and
// reports whether it did. It returns only valid events; on anything else
// it returns false, and decodeEventStd says what is wrong.
func (d *decoder) canonical(b []byte) (Event, bool) {
	d.b, d.i, d.bad = b, 0, false
	d.buf, d.fix = d.buf[:0], d.fix[:0]
	ev, ok := d.event()
	// Let go of the line, and of what the fixups point to.
	d.b = nil
	clear(d.fix)
	return ev, ok
}

func (d *decoder) event() (Event, bool) {
	var ev Event
	if !d.lit(`{"seq":`) {
		return Event{}, false
	}
	ev.Seq = d.int()
	if !d.lit(`,"event":"`) {
		return Event{}, false
	}
	ev.Type = d.eventType()
	if !d.lit(`,"at":`) {
		return Event{}, false
	}
	ev.At = d.int()
	if !d.lit(`,"data":`) || ev.Seq <= 0 || ev.Type == "" {
		return Event{}, false
	}
	if ev.Type.IsStep() {
		box := d.steps.next(d)
		d.step(box)
		ev.Step = &box.step
	} else {
		box := d.runs.next(d)
		d.run(box)
		ev.Run = &box.run
	}
	if d.lit("}") && d.i == len(d.b) && !d.bad {
		d.place()
		if (ev.Step == nil || ev.Step.Validate() == nil) && (ev.Run == nil || ev.Run.Validate() == nil) && ev.checkStatus() == nil {
			if ev.Step != nil {
				d.steps.take()
			} else {
				d.runs.take()
			}
			return ev, true
		}
	}
	if ev.Step != nil {
		d.steps.drop()
	} else {
		d.runs.drop()
	}
	return Event{}, false
}

// place makes the line's new strings one string, puts each piece where
// it goes, and remembers it.
func (d *decoder) place() {
	if len(d.fix) == 0 {
		return
	}
	all := string(d.buf)
	for _, f := range d.fix {
		s := all[f.start:f.end]
		*f.dst = s
		if f.slot >= 0 {
			d.strs[f.slot] = s
			d.remember(f.field, d.b[f.raw[0]:f.raw[1]], s)
		}
	}
}

// remember makes s, read from raw, field f's last string.
func (d *decoder) remember(f field, raw []byte, s string) {
	m := &d.last[f]
	m.raw, m.val = append(m.raw[:0], raw...), s
}

func (d *decoder) fail() { d.bad, d.i = true, len(d.b) }

// lit consumes s if b continues with it.
func (d *decoder) lit(s string) bool {
	if d.bad || len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		d.fail()
		return false
	}
	d.i += len(s)
	return true
}

func (d *decoder) hasPrefix(s string) bool {
	return !d.bad && len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s
}

// skip consumes s if b continues with it, and reports whether it did.
func (d *decoder) skip(s string) bool {
	if d.hasPrefix(s) {
		d.i += len(s)
		return true
	}
	return false
}

// null consumes "null" if it comes next.
func (d *decoder) null() bool {
	if d.hasPrefix("null") {
		d.i += 4
		return true
	}
	return false
}

// int reads an integer as JSON writes it, one that fits an int64.
func (d *decoder) int() int64 {
	b, i := d.b, d.i
	if d.bad || len(b)-i < 17 {
		return d.intSlow()
	}
	neg := b[i] == '-'
	if neg {
		i++
	}
	// Sixteen bytes on, the digits of the first eight at once, and of the
	// next eight if all eight are: a time stamp has ten.
	var n uint64
	x := binary.LittleEndian.Uint64(b[i:])
	k := 8 // digits
	if m := nonDigits(x); m != 0 {
		k = bits.TrailingZeros64(m) / 8
		n = digits8(x<<(64-8*k) | zeros>>(8*k)) // k == 0 shifts out all but the zeros
	} else {
		y := binary.LittleEndian.Uint64(b[i+8:])
		m := nonDigits(y)
		if m == 0 {
			return d.intSlow() // sixteen digits or more
		}
		j := bits.TrailingZeros64(m) / 8
		n = digits8(x)*pow10[j] + digits8(y<<(64-8*j)|zeros>>(8*j))
		k += j
	}
	// No digits, a leading zero or "-0": leave it to the reference
	// decoder. Fewer than sixteen digits fit an int64.
	if k == 0 || k > 1 && b[i] == '0' || neg && n == 0 {
		d.fail()
		return 0
	}
	d.i = i + k
	if neg {
		return -int64(n)
	}
	return int64(n)
}

// zeros is eight ASCII zeros.
const zeros = 0x3030303030303030

// intSlow is int a digit at a time.
func (d *decoder) intSlow() int64 {
	b, i := d.b, d.i
	if d.bad || i >= len(b) {
		d.fail()
		return 0
	}
	neg := b[i] == '-'
	if neg {
		i++
	}
	start := i
	var n uint64
	for ; i < len(b) && i-start <= 19; i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		n = n*10 + uint64(c)
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // math.MinInt64
	}
	// No digits, a leading zero, "-0" or out of range (more than 19
	// digits, and n may have wrapped): leave it to the reference decoder.
	switch digits := i - start; {
	case digits == 0, digits > 19, digits > 1 && b[start] == '0', neg && n == 0, n > limit:
		d.fail()
		return 0
	}
	d.i = i
	if neg {
		return int64(-n) // two's complement: right for math.MinInt64 too
	}
	return int64(n)
}

var pow10 = [9]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}

// nonDigits returns the high bit of each of the eight bytes of x (the
// first in its low byte) that is no ASCII digit. Above the first such
// byte there may be false ones: only the lowest set bit counts.
func nonDigits(x uint64) uint64 {
	// A byte is a digit if it and it plus 6 both have 3 for high nibble;
	// the sum carries into the next byte only from a byte above 0xf9,
	// which is no digit.
	y := x&(x+0x0606060606060606)&0xf0f0f0f0f0f0f0f0 ^ 0x3030303030303030
	return ((y & 0x7f7f7f7f7f7f7f7f) + 0x7f7f7f7f7f7f7f7f | y) & 0x8080808080808080
}

// digits8 returns the number eight ASCII digits write, the first in the
// low byte of x: pairs, then fours, then the eight, each step one
// multiplication (Lemire, "Fast integer parsing").
func digits8(x uint64) uint64 {
	x -= 0x3030303030303030
	x = x*10 + x>>8                                // each even byte: the pair from it up
	x = (x&0x000000ff000000ff)*(100+1000000<<32) + // each pair times its place
		(x>>16&0x000000ff000000ff)*(1+10000<<32)
	return x >> 32
}

// stamp reads null or an integer.
func (d *decoder) stamp(p *int64) *int64 {
	if d.null() {
		return nil
	}
	*p = d.int()
	return p
}

// endStamp reads null or an integer, the time a step or run ended, into
// *p. A valid step or run has one such time at most: a second one is left
// to the reference decoder, which says what is wrong.
func (d *decoder) endStamp(p *int64, seen *bool) *int64 {
	if d.null() {
		return nil
	}
	if *seen {
		d.fail()
		return nil
	}
	*seen = true
	return d.stamp(p)
}

// str reads a string of field f, after its opening quote, up to and with
// its closing one, into *dst: a string remembered, or a piece of the
// line's new strings, which place puts there. *dst must be empty.
func (d *decoder) str(dst *string, f field) {
	if d.last != nil && !d.bad {
		// The raw form of the field's last string, then its closing quote:
		// the same string again.
		m := &d.last[f]
		if n := len(m.raw); n > 0 && len(d.b)-d.i > n && d.b[d.i+n] == '"' && string(d.b[d.i:d.i+n]) == string(m.raw) {
			*dst = m.val
			d.i += n + 1
			return
		}
	}
	off, start := len(d.buf), d.i
	raw, inBuf := d.text()
	if len(raw) == 0 {
		return // *dst is "" already; or d is bad
	}
	slot := -1
	if d.strs != nil && len(raw) <= maxIntern {
		slot = int(maphash.Bytes(d.seed, raw) & (internSlots - 1))
		if s := d.strs[slot]; s == string(raw) {
			*dst = s
			d.buf = d.buf[:off]
			d.remember(f, d.b[start:d.i-1], s)
			return
		}
	}
	if !inBuf {
		d.buf = append(d.buf, raw...)
	}
	d.fix = append(d.fix, fixup{dst, off, len(d.buf), slot, f, [2]int{start, d.i - 1}})
}

// strNow is str for a string needed at once (a key of a map): a string
// remembered, or one of its own.
func (d *decoder) strNow() string {
	off := len(d.buf)
	raw, _ := d.text()
	if len(raw) == 0 {
		return ""
	}
	defer func() { d.buf = d.buf[:off] }()
	slot := -1
	if d.strs != nil && len(raw) <= maxIntern {
		slot = int(maphash.Bytes(d.seed, raw) & (internSlots - 1))
		if s := d.strs[slot]; s == string(raw) {
			return s
		}
	}
	s := string(raw)
	if slot >= 0 {
		d.strs[slot] = s
	}
	return s
}

// quoted reads a string with its opening quote into *dst.
func (d *decoder) quoted(dst *string, f field) {
	if d.lit(`"`) {
		d.str(dst, f)
	}
}

// text reads a string after its opening quote, up to and with its closing
// one, and returns what it says, checked: a piece of the line if it has
// no escapes; otherwise, unescaped, the end of buf.
func (d *decoder) text() (raw []byte, inBuf bool) {
	if d.bad {
		return nil, false
	}
	j, ascii := span(d.b, d.i)
	switch {
	case j == len(d.b):
		d.fail()
		return nil, false
	case d.b[j] == '\\':
		return d.unescape(), true
	case d.b[j] != '"', !ascii && !utf8.Valid(d.b[d.i:j]):
		// A control character, or bad UTF-8 (which the reference replaces;
		// Writer never writes it).
		d.fail()
		return nil, false
	}
	raw = d.b[d.i:j]
	d.i = j + 1
	return raw, false
}

// unescape reads a string with escapes, after its opening quote, onto the
// end of buf, and returns it. It takes the escapes Writer writes
// (encoding/json's: \" \\ \/ \b \f \n \r \t and \u of a character that is
// no surrogate) and leaves anything else to the reference decoder.
func (d *decoder) unescape() []byte {
	off := len(d.buf)
	allASCII := true
	for {
		j, ascii := span(d.b, d.i)
		allASCII = allASCII && ascii
		d.buf = append(d.buf, d.b[d.i:j]...)
		d.i = j
		if j+1 >= len(d.b) {
			break // no end, or a backslash without what it escapes
		}
		c, e := d.b[j], d.b[j+1]
		if c == '"' {
			d.i++
			out := d.buf[off:]
			if !allASCII && !utf8.Valid(out) {
				break
			}
			return out
		}
		if c != '\\' {
			break // a control character
		}
		d.i += 2
		switch e {
		case '"', '\\', '/':
			d.buf = append(d.buf, e)
		case 'b':
			d.buf = append(d.buf, '\b')
		case 'f':
			d.buf = append(d.buf, '\f')
		case 'n':
			d.buf = append(d.buf, '\n')
		case 'r':
			d.buf = append(d.buf, '\r')
		case 't':
			d.buf = append(d.buf, '\t')
		case 'u':
			r, ok := hex4(d.b[d.i:])
			if !ok || r >= 0xd800 && r < 0xe000 {
				d.fail()
				return nil
			}
			d.buf = utf8.AppendRune(d.buf, r)
			d.i += 4
		default:
			d.fail()
			return nil
		}
	}
	d.fail()
	return nil
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, h := range b[:4] {
		switch {
		case h >= '0' && h <= '9':
			r = r<<4 | rune(h-'0')
		case h >= 'a' && h <= 'f':
			r = r<<4 | rune(h-'a'+10)
		case h >= 'A' && h <= 'F':
			r = r<<4 | rune(h-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// span returns the index, from i on, of the first quote, backslash or
// control character of b (len(b) if there is none), and whether the bytes
// before it are all ASCII. It looks at eight bytes at a time: the strings
// of a line are short, and finding their end, their escapes and what JSON
// forbids in them one pass at a time cost more than decoding the rest.
func span(b []byte, i int) (int, bool) {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	var high uint64
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, s := x^(lo*'"'), x^(lo*'\\')
		// The high bit of each byte that is a quote, a backslash or below
		// 0x20; above the first, there may be false ones, so only the
		// first counts.
		if m := ((q-lo)&^q | (s-lo)&^s | (x-lo*0x20)&^x) & hi; m != 0 {
			n := bits.TrailingZeros64(m) / 8
			high |= x & (1<<(8*n) - 1)
			return i + n, high&hi == 0
		}
		high |= x
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' || c == '\\' || c < 0x20 {
			break
		}
		high |= uint64(c)
	}
	return i, high&hi == 0
}

// word reads a string that takes no escapes (after its opening quote):
// the name of a constant.
func (d *decoder) word() []byte {
	if d.bad {
		return nil
	}
	end := bytes.IndexByte(d.b[d.i:], '"')
	if end < 0 {
		d.fail()
		return nil
	}
	w := d.b[d.i : d.i+end]
	d.i += end + 1
	return w
}

// is consumes s and a closing quote if they come next, and reports
// whether they did.
func (d *decoder) is(s string) bool {
	if !d.bad && len(d.b)-d.i > len(s) && d.b[d.i+len(s)] == '"' && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s) + 1
		return true
	}
	return false
}

// eventType reads an event's name (after its opening quote): one of the
// known names, as its constant.
func (d *decoder) eventType() Type {
	w := d.word()
	t, ok := knownNames[string(w)] // no allocation: a map lookup by []byte
	if !ok {
		d.fail()
	}
	return t
}

var knownNames = func() map[string]Type {
	m := make(map[string]Type, len(known))
	for t := range known {
		m[string(t)] = t
	}
	return m
}()

// stepType, stepStatus and runStatus read a valid value as its constant.
// Anything else is an invalid step or run, which the reference reports.
func (d *decoder) stepType() lifecycle.Type {
	switch {
	case d.is(string(lifecycle.TypeToolCalls)):
		return lifecycle.TypeToolCalls
	case d.is(string(lifecycle.TypeMessageCreation)):
		return lifecycle.TypeMessageCreation
	}
	d.fail()
	return ""
}

func (d *decoder) stepStatus() lifecycle.Status {
	for _, s := range lifecycle.Statuses {
		if d.is(string(s)) {
			return s
		}
	}
	d.fail()
	return ""
}

func (d *decoder) runStatus() lifecycle.RunStatus {
	for _, s := range lifecycle.RunStatuses {
		if d.is(string(s)) {
			return s
		}
	}
	d.fail()
	return ""
}

// stepBox holds a step and when it ended; its details, usage and
// last_error, which not every step has, are allocated apart.
type stepBox struct {
	step lifecycle.Step
	at   int64 // when it ended
}

// usageBox holds a step's usage and its details.
type usageBox struct {
	usage lifecycle.Usage
	ptd   lifecycle.PromptTokenDetails
	ctd   lifecycle.CompletionTokensDetails
}

func (d *decoder) step(box *stepBox) {
	s := &box.step
	d.lit(`{"id":"`)
	d.str(&s.ID, fieldStepID)
	d.lit(`,"object":"assistant.run.step","created_at":`)
	s.CreatedAt = d.int()
	d.lit(`,"assistant_id":"`)
	d.str(&s.AssistantID, fieldAssistant)
	d.lit(`,"thread_id":"`)
	d.str(&s.ThreadID, fieldThread)
	d.lit(`,"run_id":"`)
	d.str(&s.RunID, fieldRunID)
	d.lit(`,"type":"`)
	s.Type = d.stepType()
	d.lit(`,"status":"`)
	s.Status = d.stepStatus()
	d.lit(`,"step_details":`)
	d.details(&s.Details)
	// Most steps are in progress or completed: their nulls are one
	// comparison.
	var ended bool
	if d.skip(`,"last_error":null,"expired_at":null,"cancelled_at":null,"failed_at":null,"completed_at":`) {
		s.CompletedAt = d.endStamp(&box.at, &ended)
	} else {
		d.lit(`,"last_error":`)
		s.LastError = d.lastError()
		d.lit(`,"expired_at":`)
		s.ExpiredAt = d.endStamp(&box.at, &ended)
		d.lit(`,"cancelled_at":`)
		s.CancelledAt = d.endStamp(&box.at, &ended)
		d.lit(`,"failed_at":`)
		s.FailedAt = d.endStamp(&box.at, &ended)
		d.lit(`,"completed_at":`)
		s.CompletedAt = d.endStamp(&box.at, &ended)
	}
	if !d.skip(`,"metadata":null,"usage":`) {
		d.lit(`,"metadata":`)
		s.Metadata = d.metadata()
		d.lit(`,"usage":`)
	}
	s.Usage = d.usage()
	d.lit("}")
}

func (d *decoder) details(det *lifecycle.StepDetails) {
	switch {
	case d.skip(`{"type":"message_creation","message_creation":{"message_id":"`):
		mc := d.msgs.get(d)
		d.str(&mc.MessageID, fieldMessage)
		d.lit("}}")
		det.Type, det.MessageCreation = lifecycle.TypeMessageCreation, mc
	case d.skip(`{"type":"tool_calls","tool_calls":[]}`):
		det.Type = lifecycle.TypeToolCalls
	case d.skip(`{"type":"tool_calls","tool_calls":[`):
		det.Type, det.ToolCalls = lifecycle.TypeToolCalls, d.toolCalls()
	default:
		d.fail()
	}
}

// callBox holds a step's one tool call, a function call, and its output.
type callBox struct {
	call [1]lifecycle.ToolCall
	fn   [1]fnBox
}

// fnBox holds a function call and its output.
type fnBox struct {
	fn  lifecycle.FunctionCall
	out string
}

// toolCalls reads function calls up to the list's end; any other kind is
// left to the reference decoder.
func (d *decoder) toolCalls() []lifecycle.ToolCall {
	// Most steps make one call: read it into a box of its own. Place
	// puts strings where str was told to, so a call cannot move once
	// read: for more calls, count them and read them all again.
	start, fix, buf := d.i, len(d.fix), len(d.buf)
	box := d.calls.get(d)
	d.call(&box.call[0], &box.fn[0])
	if d.skip("]}") {
		return box.call[:]
	}
	if d.bad || !d.hasPrefix(",") {
		d.fail()
		return nil
	}
	d.i, d.fix, d.buf = start, d.fix[:fix], d.buf[:buf]
	n := 1 + bytes.Count(d.b[d.i:], []byte(`},{"id":"`)) // at most this many calls
	calls, fns := make([]lifecycle.ToolCall, n), make([]fnBox, n)
	for i := range calls {
		d.call(&calls[i], &fns[i])
		switch {
		case d.skip("]}"):
			return calls[:i+1]
		case !d.skip(","):
			d.fail()
			return nil
		}
	}
	d.fail()
	return nil
}

// call reads a function call into tc and fb.
func (d *decoder) call(tc *lifecycle.ToolCall, fb *fnBox) {
	d.lit(`{"id":"`)
	d.str(&tc.ID, fieldCallID)
	d.lit(`,"type":"function","function":{"name":"`)
	tc.Type = lifecycle.ToolCallFunction
	d.str(&fb.fn.Name, fieldFunction)
	d.lit(`,"arguments":"`)
	d.str(&fb.fn.Arguments, fieldArguments)
	d.lit(`,"output":`)
	if !d.null() {
		d.quoted(&fb.out, fieldOutput)
		fb.fn.Output = &fb.out
	}
	d.lit("}}")
	tc.Function = &fb.fn
}

// lastError reads null or an error, which only a failed step or run has.
func (d *decoder) lastError() *lifecycle.LastError {
	if d.null() {
		return nil
	}
	le := new(lifecycle.LastError)
	d.lit(`{"code":"`)
	d.str((*string)(&le.Code), fieldErrorCode)
	d.lit(`,"message":"`)
	d.str(&le.Message, fieldErrorMessage)
	d.lit("}")
	return le
}

// metadata reads null or an object of strings. A key given twice keeps
// its last value, as encoding/json does.
func (d *decoder) metadata() lifecycle.Metadata {
	if d.null() {
		return nil
	}
	d.lit("{")
	m := lifecycle.Metadata{}
	if d.skip("}") {
		return m
	}
	for !d.bad {
		d.lit(`"`)
		k := d.strNow()
		d.lit(`:"`)
		m[k] = d.strNow()
		if d.skip("}") {
			return m
		}
		d.lit(",")
	}
	return nil
}

func (d *decoder) usage() *lifecycle.Usage {
	if d.null() {
		return nil
	}
	box := d.usages.get(d)
	u := &box.usage
	d.lit(`{"prompt_tokens":`)
	u.PromptTokens = d.int()
	d.lit(`,"completion_tokens":`)
	u.CompletionTokens = d.int()
	d.lit(`,"total_tokens":`)
	u.TotalTokens = d.int()
	if d.skip(`,"prompt_token_details":{"cached_tokens":`) {
		box.ptd.CachedTokens = d.int()
		u.PromptTokenDetails = &box.ptd
		d.lit("}")
	}
	if d.skip(`,"completion_tokens_details":{"reasoning_tokens":`) {
		box.ctd.ReasoningTokens = d.int()
		u.CompletionTokensDetails = &box.ctd
		d.lit("}")
	}
	d.lit("}")
	return u
}

// runBox holds a run and what its pointers point to, but for its
// last_error.
type runBox struct {
	run    lifecycle.Run
	stamps [3]int64 // started_at, expires_at, and when it ended
}

func (d *decoder) run(box *runBox) {
	r := &box.run
	d.lit(`{"id":"`)
	d.str(&r.ID, fieldRunID)
	d.lit(`,"object":"thread.run","created_at":`)
	r.CreatedAt = d.int()
	d.lit(`,"assistant_id":"`)
	d.str(&r.AssistantID, fieldAssistant)
	d.lit(`,"thread_id":"`)
	d.str(&r.ThreadID, fieldThread)
	d.lit(`,"status":"`)
	r.Status = d.runStatus()
	d.lit(`,"started_at":`)
	r.StartedAt = d.stamp(&box.stamps[0])
	d.lit(`,"expires_at":`)
	r.ExpiresAt = d.stamp(&box.stamps[1])
	// Most runs have not been cancelled or failed: their nulls are one
	// comparison.
	var ended bool
	if d.skip(`,"cancelled_at":null,"failed_at":null,"completed_at":`) {
		r.CompletedAt = d.endStamp(&box.stamps[2], &ended)
	} else {
		d.lit(`,"cancelled_at":`)
		r.CancelledAt = d.endStamp(&box.stamps[2], &ended)
		d.lit(`,"failed_at":`)
		r.FailedAt = d.endStamp(&box.stamps[2], &ended)
		d.lit(`,"completed_at":`)
		r.CompletedAt = d.endStamp(&box.stamps[2], &ended)
	}
	if !d.skip(`,"last_error":null,"metadata":`) {
		d.lit(`,"last_error":`)
		r.LastError = d.lastError()
		d.lit(`,"metadata":`)
	}
	r.Metadata = d.metadata()
	d.lit("}")
}
