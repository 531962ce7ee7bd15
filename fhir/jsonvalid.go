package fhir

// validJSON reports whether data is one JSON value, as encoding/json.Valid
// does, and agrees with it on every input (FuzzValidJSONAgreesWithEncodingJSON):
// bytes of 0x20 and above are accepted in strings as they are (json.Valid
// does not check UTF-8 either), and nesting deeper than 10,000 is refused.
//
// Every body is checked before its members are split without decoding
// (ParseObject, the reference rewrite), some of them four times on the way
// to the store, under its write lock too: encoding/json's state machine, a
// function call per byte, was a tenth of an import's CPU.
func validJSON(data []byte) bool {
	const maxDepth = 10000 // encoding/json's limit
	var stack []byte       // '{' or '[' for each open container
	i := skipSpace(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if len(stack) == maxDepth {
				return false
			}
			stack = append(stack, c)
			i = skipSpace(data, i+1)
			if i < len(data) && (c == '{' && data[i] == '}' || c == '[' && data[i] == ']') {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i = validKey(data, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			if i = validString(data, i); i < 0 {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			if i = validNumber(data, i); i < 0 {
				return false
			}
		case c == 't':
			if !hasAt(data, i, "true") {
				return false
			}
			i += 4
		case c == 'f':
			if !hasAt(data, i, "false") {
				return false
			}
			i += 5
		case c == 'n':
			if !hasAt(data, i, "null") {
				return false
			}
			i += 4
		default:
			return false
		}
		// A value ended at i: close containers, or go on to the next member.
		for {
			i = skipSpace(data, i)
			if len(stack) == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			top := stack[len(stack)-1]
			if data[i] == ',' {
				i = skipSpace(data, i+1)
				if top == '{' {
					if i = validKey(data, i); i < 0 {
						return false
					}
				}
				break
			}
			if top == '{' && data[i] == '}' || top == '[' && data[i] == ']' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			return false
		}
	}
}

// validKey checks an object member's key and its colon at i; it returns
// where the value starts, or -1.
func validKey(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = validString(data, i); i < 0 {
		return -1
	}
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipSpace(data, i+1)
}

// plainStringByte marks the bytes a string holds as they are.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// validString checks the string starting at data[i] == '"'; it returns the
// index after its closing quote, or -1.
func validString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		c := data[i]
		if plainStringByte[c] {
			continue
		}
		switch c {
		case '"':
			return i + 1
		case '\\':
			i++
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return -1
				}
				for _, h := range data[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
	return -1
}

// validNumber checks the number starting at i; it returns where it ends, or
// -1.
func validNumber(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

func hasAt(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}

// AppendCompact appends JSON data to dst without its insignificant
// whitespace, as json.Compact writes it, in one plain pass: a tenth of
// json.Compact's cost, which a megabyte-sized Bundle file feels. ok is false,
// and dst unchanged, when data is not valid JSON (use json.Compact for its
// error).
func AppendCompact(dst, data []byte) (_ []byte, ok bool) {
	if !validJSON(data) {
		return dst, false
	}
	start := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			i = skipString(data, i) - 1
		case ' ', '\t', '\n', '\r':
			dst = append(dst, data[start:i]...)
			start = i + 1
		}
	}
	return append(dst, data[start:]...), true
}
