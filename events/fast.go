package events

import (
	"bytes"
	"math"
	"unicode/utf8"

	"github.com/runstep/runstep/lifecycle"
)

// The fast path. Profiling replay showed encoding/json taking nine tenths
// of the time (lifecycle's UnmarshalJSON methods decode each event three
// times over: envelope, step, details), so a line in exactly the form
// Writer writes (its keys in its order, no spaces, function tool calls) is
// decoded here, with one pass, one copy of the line for all its strings
// and few allocations. Anything else — other spacing or key order, code
// interpreter or file search calls, lenient forms of real traffic, and
// every error — falls back to decodeEventStd, the reference. A fuzz test
// holds the two to the same result on any input.

// decodeCanonical decodes b if it is exactly in the form Writer writes,
// and reports whether it did. It returns only valid events; on anything
// else it returns false, and decodeEventStd says what is wrong.
func decodeCanonical(b []byte) (Event, bool) {
	d := fastDecoder{b: b}
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
		ev.Step = d.step()
	} else {
		ev.Run = d.run()
	}
	if !d.lit("}") || d.i != len(d.b) || d.bad {
		return Event{}, false
	}
	if ev.Step != nil && ev.Step.Validate() != nil || ev.Run != nil && ev.Run.Validate() != nil {
		return Event{}, false
	}
	if ev.checkStatus() != nil {
		return Event{}, false
	}
	return ev, true
}

// fastDecoder reads b from i on. Once bad, every read fails and returns a
// zero value, so the caller checks once at the end.
type fastDecoder struct {
	b   []byte
	i   int
	s   string // b as a string, made on the first string read
	bad bool
}

func (d *fastDecoder) fail() { d.bad, d.i = true, len(d.b) }

// lit consumes s if b continues with it.
func (d *fastDecoder) lit(s string) bool {
	if d.bad || len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		d.fail()
		return false
	}
	d.i += len(s)
	return true
}

// null consumes "null" if it comes next.
func (d *fastDecoder) null() bool {
	if !d.bad && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// int reads an integer as JSON writes it, one that fits an int64.
func (d *fastDecoder) int() int64 {
	if d.bad {
		return 0
	}
	neg := d.i < len(d.b) && d.b[d.i] == '-'
	if neg {
		d.i++
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // math.MinInt64
	}
	start := d.i
	var n uint64
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		digit := uint64(d.b[d.i] - '0')
		if n > (limit-digit)/10 {
			d.fail() // out of range: the reference decoder says so
			return 0
		}
		n = n*10 + digit
		d.i++
	}
	// No digits, a leading zero or "-0": leave it to the reference
	// decoder.
	if digits := d.i - start; digits == 0 || digits > 1 && d.b[start] == '0' || neg && n == 0 {
		d.fail()
		return 0
	}
	if neg {
		return int64(-n) // two's complement: right for math.MinInt64 too
	}
	return int64(n)
}

// stamp reads null or an integer.
func (d *fastDecoder) stamp(p *int64) *int64 {
	if d.null() {
		return nil
	}
	*p = d.int()
	return p
}

// str reads a string: after its opening quote, up to and with its closing
// one. A string without escapes is a piece of one copy of the line.
func (d *fastDecoder) str() string {
	if d.bad {
		return ""
	}
	end := bytes.IndexByte(d.b[d.i:], '"')
	if end < 0 {
		d.fail()
		return ""
	}
	raw := d.b[d.i : d.i+end]
	if bytes.IndexByte(raw, '\\') >= 0 {
		return d.escaped()
	}
	if !plain(raw) {
		d.fail()
		return ""
	}
	if d.s == "" {
		d.s = string(d.b)
	}
	s := d.s[d.i : d.i+end]
	d.i += end + 1
	return s
}

// quoted reads a string with its opening quote.
func (d *fastDecoder) quoted() string {
	if !d.lit(`"`) {
		return ""
	}
	return d.str()
}

// plain reports whether raw can stand in a JSON string as it is: valid
// UTF-8 without control characters. (The reference decoder replaces bad
// UTF-8; Writer never writes it.)
func plain(raw []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ascii := true
	i := 0
	for ; i+8 <= len(raw); i += 8 {
		x := uint64(raw[i]) | uint64(raw[i+1])<<8 | uint64(raw[i+2])<<16 | uint64(raw[i+3])<<24 |
			uint64(raw[i+4])<<32 | uint64(raw[i+5])<<40 | uint64(raw[i+6])<<48 | uint64(raw[i+7])<<56
		if (x-lo*0x20)&^x&hi != 0 { // some byte < 0x20
			return false
		}
		if x&hi != 0 {
			ascii = false
		}
	}
	for ; i < len(raw); i++ {
		if raw[i] < 0x20 {
			return false
		}
		if raw[i] >= 0x80 {
			ascii = false
		}
	}
	return ascii || utf8.Valid(raw)
}

// escaped reads a string that has escapes. It takes those Writer writes
// (encoding/json's: \" \\ \/ \b \f \n \r \t and \u of a character that is
// no surrogate) and leaves anything else to the reference decoder.
func (d *fastDecoder) escaped() string {
	var out []byte
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(out) {
				d.fail()
				return ""
			}
			return string(out)
		case c < 0x20:
			d.fail()
			return ""
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			break
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if d.i+4 > len(d.b) {
				d.fail()
				return ""
			}
			var r rune
			for _, h := range d.b[d.i : d.i+4] {
				switch {
				case h >= '0' && h <= '9':
					r = r<<4 | rune(h-'0')
				case h >= 'a' && h <= 'f':
					r = r<<4 | rune(h-'a'+10)
				case h >= 'A' && h <= 'F':
					r = r<<4 | rune(h-'A'+10)
				default:
					d.fail()
					return ""
				}
			}
			if r >= 0xd800 && r < 0xe000 {
				d.fail()
				return ""
			}
			out = utf8.AppendRune(out, r)
			d.i += 4
		default:
			d.fail()
			return ""
		}
	}
	d.fail()
	return ""
}

// eventType reads an event's name (after its opening quote): one of the
// known names, as its constant.
func (d *fastDecoder) eventType() Type {
	if d.bad {
		return ""
	}
	end := bytes.IndexByte(d.b[d.i:], '"')
	if end < 0 {
		d.fail()
		return ""
	}
	t, ok := knownNames[string(d.b[d.i:d.i+end])] // no allocation: a map lookup by []byte
	if !ok {
		d.fail()
		return ""
	}
	d.i += end + 1
	return t
}

var knownNames = func() map[string]Type {
	m := make(map[string]Type, len(known))
	for t := range known {
		m[string(t)] = t
	}
	return m
}()

// stepBox holds a step and what its pointers point to, so that decoding
// a step allocates once.
type stepBox struct {
	step   lifecycle.Step
	stamps [4]int64
	le     lifecycle.LastError
	usage  lifecycle.Usage
	ptd    lifecycle.PromptTokenDetails
	ctd    lifecycle.CompletionTokensDetails
	mc     lifecycle.MessageCreation
}

func (d *fastDecoder) step() *lifecycle.Step {
	box := new(stepBox)
	s := &box.step
	d.lit(`{"id":"`)
	s.ID = d.str()
	d.lit(`,"object":"assistant.run.step","created_at":`)
	s.CreatedAt = d.int()
	d.lit(`,"assistant_id":"`)
	s.AssistantID = d.str()
	d.lit(`,"thread_id":"`)
	s.ThreadID = d.str()
	d.lit(`,"run_id":"`)
	s.RunID = d.str()
	d.lit(`,"type":"`)
	s.Type = lifecycle.Type(d.str())
	d.lit(`,"status":"`)
	s.Status = lifecycle.Status(d.str())
	d.lit(`,"step_details":`)
	s.Details = d.details(box)
	d.lit(`,"last_error":`)
	s.LastError = d.lastError(&box.le)
	d.lit(`,"expired_at":`)
	s.ExpiredAt = d.stamp(&box.stamps[0])
	d.lit(`,"cancelled_at":`)
	s.CancelledAt = d.stamp(&box.stamps[1])
	d.lit(`,"failed_at":`)
	s.FailedAt = d.stamp(&box.stamps[2])
	d.lit(`,"completed_at":`)
	s.CompletedAt = d.stamp(&box.stamps[3])
	d.lit(`,"metadata":`)
	s.Metadata = d.metadata()
	d.lit(`,"usage":`)
	s.Usage = d.usage(box)
	d.lit("}")
	return s
}

func (d *fastDecoder) details(box *stepBox) lifecycle.StepDetails {
	switch {
	case d.null():
		d.fail() // step_details is required
	case d.hasPrefix(`{"type":"message_creation","message_creation":{"message_id":"`):
		d.i += len(`{"type":"message_creation","message_creation":{"message_id":"`)
		box.mc.MessageID = d.str()
		d.lit("}}")
		return lifecycle.StepDetails{Type: lifecycle.TypeMessageCreation, MessageCreation: &box.mc}
	case d.hasPrefix(`{"type":"tool_calls","tool_calls":[]}`):
		d.i += len(`{"type":"tool_calls","tool_calls":[]}`)
		return lifecycle.StepDetails{Type: lifecycle.TypeToolCalls}
	case d.hasPrefix(`{"type":"tool_calls","tool_calls":[`):
		d.i += len(`{"type":"tool_calls","tool_calls":[`)
		return lifecycle.StepDetails{Type: lifecycle.TypeToolCalls, ToolCalls: d.toolCalls()}
	default:
		d.fail()
	}
	return lifecycle.StepDetails{}
}

func (d *fastDecoder) hasPrefix(s string) bool {
	return !d.bad && len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s
}

// callBox holds a function call and its output.
type callBox struct {
	fn  lifecycle.FunctionCall
	out string
}

// toolCalls reads function calls up to the list's end; any other kind is
// left to the reference decoder.
func (d *fastDecoder) toolCalls() []lifecycle.ToolCall {
	n := 1 + bytes.Count(d.b[d.i:], []byte(`},{"id":"`)) // at most this many calls
	calls := make([]lifecycle.ToolCall, 0, n)
	boxes := make([]callBox, n)
	for i := 0; !d.bad; i++ {
		if i == n {
			d.fail()
			break
		}
		box := &boxes[i]
		var tc lifecycle.ToolCall
		d.lit(`{"id":"`)
		tc.ID = d.str()
		d.lit(`,"type":"function","function":{"name":"`)
		tc.Type = lifecycle.ToolCallFunction
		box.fn.Name = d.str()
		d.lit(`,"arguments":"`)
		box.fn.Arguments = d.str()
		d.lit(`,"output":`)
		if !d.null() {
			box.out = d.quoted()
			box.fn.Output = &box.out
		}
		d.lit("}}")
		tc.Function = &box.fn
		calls = append(calls, tc)
		if d.hasPrefix("]}") {
			d.i += 2
			return calls
		}
		d.lit(",")
	}
	return nil
}

func (d *fastDecoder) lastError(le *lifecycle.LastError) *lifecycle.LastError {
	if d.null() {
		return nil
	}
	d.lit(`{"code":"`)
	le.Code = lifecycle.ErrorCode(d.str())
	d.lit(`,"message":"`)
	le.Message = d.str()
	d.lit("}")
	return le
}

// metadata reads null or an object of strings. A key given twice keeps
// its last value, as encoding/json does.
func (d *fastDecoder) metadata() lifecycle.Metadata {
	if d.null() {
		return nil
	}
	d.lit("{")
	m := lifecycle.Metadata{}
	if d.hasPrefix("}") {
		d.i++
		return m
	}
	for !d.bad {
		k := d.quoted()
		d.lit(":")
		m[k] = d.quoted()
		if d.hasPrefix("}") {
			d.i++
			return m
		}
		d.lit(",")
	}
	return nil
}

func (d *fastDecoder) usage(box *stepBox) *lifecycle.Usage {
	if d.null() {
		return nil
	}
	u := &box.usage
	d.lit(`{"prompt_tokens":`)
	u.PromptTokens = d.int()
	d.lit(`,"completion_tokens":`)
	u.CompletionTokens = d.int()
	d.lit(`,"total_tokens":`)
	u.TotalTokens = d.int()
	if d.hasPrefix(`,"prompt_token_details":{"cached_tokens":`) {
		d.i += len(`,"prompt_token_details":{"cached_tokens":`)
		box.ptd.CachedTokens = d.int()
		d.lit("}")
		u.PromptTokenDetails = &box.ptd
	}
	if d.hasPrefix(`,"completion_tokens_details":{"reasoning_tokens":`) {
		d.i += len(`,"completion_tokens_details":{"reasoning_tokens":`)
		box.ctd.ReasoningTokens = d.int()
		d.lit("}")
		u.CompletionTokensDetails = &box.ctd
	}
	d.lit("}")
	return u
}

// runBox holds a run and what its pointers point to.
type runBox struct {
	run    lifecycle.Run
	stamps [5]int64
	le     lifecycle.LastError
}

func (d *fastDecoder) run() *lifecycle.Run {
	box := new(runBox)
	r := &box.run
	d.lit(`{"id":"`)
	r.ID = d.str()
	d.lit(`,"object":"thread.run","created_at":`)
	r.CreatedAt = d.int()
	d.lit(`,"assistant_id":"`)
	r.AssistantID = d.str()
	d.lit(`,"thread_id":"`)
	r.ThreadID = d.str()
	d.lit(`,"status":"`)
	r.Status = lifecycle.RunStatus(d.str())
	d.lit(`,"started_at":`)
	r.StartedAt = d.stamp(&box.stamps[0])
	d.lit(`,"expires_at":`)
	r.ExpiresAt = d.stamp(&box.stamps[1])
	d.lit(`,"cancelled_at":`)
	r.CancelledAt = d.stamp(&box.stamps[2])
	d.lit(`,"failed_at":`)
	r.FailedAt = d.stamp(&box.stamps[3])
	d.lit(`,"completed_at":`)
	r.CompletedAt = d.stamp(&box.stamps[4])
	d.lit(`,"last_error":`)
	r.LastError = d.lastError(&box.le)
	d.lit(`,"metadata":`)
	r.Metadata = d.metadata()
	d.lit("}")
	return r
}
