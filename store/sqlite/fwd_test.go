package sqlite

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
)

// TestPackValuesIsTheJSONOfTheSortedDistinctValues: what fwd_idx stores
// decodes, in Go and in SQLite (the views ref_fwd and tok_fwd read it with
// json_each), to the values given, sorted and each once, whatever
// characters they hold.
func TestPackValuesIsTheJSONOfTheSortedDistinctValues(t *testing.T) {
	odd := []string{`quo"te`, `back\slash`, "tab\tand\nline", "\x01", "é 日本", "<&>", "\u2028", ""}
	tests := []struct {
		name string
		vals [][]string
		want [][]string
	}{
		{"none", nil, [][]string{}},
		{"one", [][]string{{"entity", "Patient", "p1", ""}}, [][]string{{"entity", "Patient", "p1", ""}}},
		{"duplicates kept once, sorted", [][]string{{"entity", "Observation", "o2", ""}, {"entity", "Patient", "p1", ""}, {"entity", "Observation", "o2", ""}, {"action", "", "R", ""}},
			[][]string{{"action", "", "R", ""}, {"entity", "Observation", "o2", ""}, {"entity", "Patient", "p1", ""}}},
		{"characters to escape", [][]string{odd[:4], odd[4:]}, [][]string{odd[:4], odd[4:]}},
	}
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			packed := packValues(slices.Clone(tt.vals))
			var got [][]string
			if err := json.Unmarshal([]byte(packed), &got); err != nil || !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Fatalf("packValues = %s: decodes to %q (%v), want %q", packed, got, err, tt.want)
			}
			rows, err := s.read.QueryContext(context.Background(), `SELECT e.value->>0, e.value->>1, e.value->>2, e.value->>3 FROM json_each(?) e ORDER BY e.key`, packed)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var inSQL [][]string
			for rows.Next() {
				v := make([]string, 4)
				if err := rows.Scan(&v[0], &v[1], &v[2], &v[3]); err != nil {
					t.Fatal(err)
				}
				inSQL = append(inSQL, v)
			}
			if len(tt.want) == 0 && len(inSQL) == 0 {
				return
			}
			if !slices.EqualFunc(inSQL, tt.want, slices.Equal) {
				t.Fatalf("SQLite reads %s as %q, want %q", packed, inSQL, tt.want)
			}
		})
	}
}
