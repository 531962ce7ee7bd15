package fhir

// IndexSubset extracts only some search parameters of a resource: what a
// decision needs (the patients a resource belongs to, its security labels)
// without evaluating the forty-odd expressions of a full index.
type IndexSubset struct {
	plans map[string][]indexParam
	reads map[string]*memberTrie // readsOf(plans)
}

// NewIndexSubset keeps, for each type, the parameters keep accepts.
func NewIndexSubset(keep func(resourceType, param string) bool) *IndexSubset {
	all := loadIndexPlans()
	s := &IndexSubset{plans: make(map[string][]indexParam, len(all))}
	for typ, plan := range all {
		var kept []indexParam
		for _, p := range plan {
			if keep(typ, p.name) {
				kept = append(kept, p)
			}
		}
		if len(kept) > 0 {
			s.plans[typ] = kept
		}
	}
	s.reads = readsOf(s.plans)
	return s
}

// Extract is ExtractIndex restricted to the subset's parameters: the same
// values, for those parameters, as ExtractIndex gives.
func (s *IndexSubset) Extract(body []byte) Index {
	return extractWith(body, s.plans, s.reads, false)
}
