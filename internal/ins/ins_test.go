package ins

import (
	"strings"
	"testing"
)

func TestValidateMatricules(t *testing.T) {
	for _, tc := range []struct {
		name, nir, wantErr string
	}{
		{"mainland number with its key", "255081416802538", ""},
		{"Corsica 2A: the key counts 2A as 19", "283052A12345681", ""},
		{"Corsica 2B: the key counts 2B as 18", "183062B12345677", ""},
		{"unknown month 20-42 is accepted", "155201416802586", ""},
		{"wrong key", "255081416802539", "the key is 39 but the number gives 38"},
		{"too short", "25508141680253", "14 characters"},
		{"too long", "2550814168025380", "16 characters"},
		{"a letter outside the department", "25508141680X538", "character 12"},
		{"2C is no department", "283052C12345681", "character 7"},
		{"sex digit 9", "955081416802538", "first digit"},
		{"month 13", "255131416802538", "month"},
		{"department 20 is Corsica's old number", "255082016802538", "department"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.nir)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%s) = %v, want valid", tc.nir, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate(%s) = %v, want an error saying %q", tc.nir, err, tc.wantErr)
			}
		})
	}
}

func TestWithKeyMakesValidMatricules(t *testing.T) {
	for _, first13 := range []string{"2830519123456", "283052A123456", "183062B123456", "1990199123001"} {
		m, err := WithKey(first13)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(m); err != nil {
			t.Errorf("WithKey(%s) = %s, which Validate refuses: %v", first13, m, err)
		}
	}
}
