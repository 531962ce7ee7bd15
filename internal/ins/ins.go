// Package ins knows the French patient identifiers of the DMP: the INS
// matricule (NIR or NIA, 13 characters and a 2-digit key) and the OIDs of
// its assigning authorities (DOMAIN.md §2.1).
package ins

import (
	"fmt"
	"strconv"
	"strings"
)

// Assigning authorities of the INS matricule, as FHIR identifier systems.
const (
	SystemNIR  = "urn:oid:1.2.250.1.213.1.4.8"  // INS-NIR, the definitive number
	SystemNIA  = "urn:oid:1.2.250.1.213.1.4.9"  // INS-NIA, a temporary number
	SystemTest = "urn:oid:1.2.250.1.213.1.4.10" // test identities
	SystemDemo = "urn:oid:1.2.250.1.213.1.4.11" // demonstration identities
)

// TypeCode is the FR Core identifier type (fr-core-cs-v2-0203) of each system.
var TypeCode = map[string]string{
	SystemNIR: "INS-NIR", SystemNIA: "INS-NIA", SystemTest: "INS-NIR-TEST", SystemDemo: "INS-NIR-DEMO",
}

// IsSystem says whether system is one of the INS assigning authorities.
func IsSystem(system string) bool { _, ok := TypeCode[system]; return ok }

// Error says what is wrong with a matricule, for a 422 message.
type Error struct{ Reason string }

func (e *Error) Error() string { return "invalid INS matricule: " + e.Reason }

// Key returns the control key of the 13 first characters of a matricule:
// 97 - (N mod 97), where N is the number they write once Corsica's
// departments 2A and 2B are read as 19 and 18.
func Key(first13 string) (int, error) {
	if len(first13) != 13 {
		return 0, &Error{fmt.Sprintf("the number before the key has %d characters, not 13", len(first13))}
	}
	digits := first13
	switch strings.ToUpper(first13[5:7]) {
	case "2A":
		digits = first13[:5] + "19" + first13[7:]
	case "2B":
		digits = first13[:5] + "18" + first13[7:]
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, &Error{"only digits are allowed, but for 2A or 2B as the department"}
	}
	return int(97 - n%97), nil
}

// Validate checks a 15-character matricule: sex, month, department, the
// characters, and the key. The message of the error says which is wrong.
func Validate(m string) error {
	if len(m) != 15 {
		return &Error{fmt.Sprintf("it has %d characters; an INS matricule has 15 (13 and a 2-digit key)", len(m))}
	}
	for i := 0; i < 15; i++ {
		c := m[i]
		corsica := (i == 5 && c == '2') || (i == 6 && (c == 'A' || c == 'B') && m[5] == '2')
		if (c < '0' || c > '9') && !corsica {
			return &Error{fmt.Sprintf("character %d (%q) must be a digit (letters only in department 2A or 2B)", i+1, string(c))}
		}
	}
	if !strings.ContainsRune("12345678", rune(m[0])) {
		return &Error{fmt.Sprintf("the first digit (sex) is %c; it must be 1 or 2 (3, 4, 7 or 8 for provisional numbers)", m[0])}
	}
	// Month: 01-12, or INSEE's 20-42 and 50-99 for an unknown month.
	if month, _ := strconv.Atoi(m[3:5]); month == 0 || (month > 12 && month < 20) || (month > 42 && month < 50) {
		return &Error{fmt.Sprintf("the month (characters 4-5) is %s; it must be 01 to 12 (or 20-42, 50-99 when unknown)", m[3:5])}
	}
	if dept := m[5:7]; dept == "00" || dept == "20" {
		return &Error{fmt.Sprintf("the department (characters 6-7) is %s, which does not exist (Corsica is 2A or 2B)", dept)}
	}
	want, err := Key(m[:13])
	if err != nil {
		return err
	}
	got, _ := strconv.Atoi(m[13:])
	if got != want {
		return &Error{fmt.Sprintf("the key is %s but the number gives %02d", m[13:], want)}
	}
	return nil
}

// WithKey returns the 13 first characters followed by their key: a valid
// matricule, for test and demonstration identities.
func WithKey(first13 string) (string, error) {
	k, err := Key(first13)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%02d", first13, k), nil
}
