package auth

import "github.com/dmp-fhir/dmp-fhir/fhir"

// The AuditEvent's JSON, written by hand: encoding/json's reflection was
// 5% of the server's CPU under W2 (an event lists the 50 resources of a
// page). The output is encoding/json's, byte for byte (the fields in the
// structs' order, their omitempty, a nil slice without omitempty as null,
// strings escaped as encoding/json escapes them): the journal's stamp
// splice and the index taken from the struct rely on that, and
// TestAuditEventJSONIsEncodingJSONs checks it on every shape of access.

// appendJSON appends ae as encoding/json would marshal it.
func (ae *aeAuditEvent) appendJSON(b []byte) []byte {
	b = append(b, `{"resourceType":`...)
	b = fhir.AppendString(b, ae.ResourceType)
	b = append(b, `,"type":`...)
	b = ae.Type.appendJSON(b)
	if len(ae.Subtype) > 0 {
		b = appendArray(append(b, `,"subtype":`...), ae.Subtype, (*aeCoding).appendJSON)
	}
	b = append(b, `,"action":`...)
	b = fhir.AppendString(b, ae.Action)
	b = append(b, `,"period":{"start":`...)
	b = fhir.AppendString(b, ae.Period.Start)
	b = append(b, `},"recorded":`...)
	b = fhir.AppendString(b, ae.Recorded)
	b = append(b, `,"outcome":`...)
	b = fhir.AppendString(b, ae.Outcome)
	if ae.OutcomeDesc != "" {
		b = append(b, `,"outcomeDesc":`...)
		b = fhir.AppendString(b, ae.OutcomeDesc)
	}
	if len(ae.PurposeOfEvent) > 0 {
		b = appendArray(append(b, `,"purposeOfEvent":`...), ae.PurposeOfEvent, (*aeCodeable).appendJSON)
	}
	b = appendArray(append(b, `,"agent":`...), ae.Agent, (*aeAgent).appendJSON)
	b = append(b, `,"source":{"observer":`...)
	b = ae.Source.Observer.appendJSON(b)
	b = appendArray(append(b, `,"type":`...), ae.Source.Type, (*aeCoding).appendJSON)
	b = append(b, '}')
	if len(ae.Entity) > 0 {
		b = appendArray(append(b, `,"entity":`...), ae.Entity, (*aeEntity).appendJSON)
	}
	return append(b, '}')
}

// member appends the key "name": of an object member, after a comma unless
// the object has just been opened (b's last byte is '{').
func member(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func (c *aeCoding) appendJSON(b []byte) []byte {
	b = append(b, '{')
	b = omitEmpty(b, "system", c.System)
	b = omitEmpty(b, "code", c.Code)
	b = omitEmpty(b, "display", c.Display)
	return append(b, '}')
}

// omitEmpty appends the member "name":v unless v is empty (omitempty).
func omitEmpty(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return fhir.AppendString(member(b, name), v)
}

// appendArray appends items as a JSON array, each written by appendItem,
// and a nil slice as null, as encoding/json does.
func appendArray[T any](b []byte, items []T, appendItem func(*T, []byte) []byte) []byte {
	if items == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendItem(&items[i], b)
	}
	return append(b, ']')
}

func (c *aeCodeable) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if len(c.Coding) > 0 {
		b = appendArray(member(b, "coding"), c.Coding, (*aeCoding).appendJSON)
	}
	b = omitEmpty(b, "text", c.Text)
	return append(b, '}')
}

func (r *aeReference) appendJSON(b []byte) []byte {
	b = append(b, '{')
	b = omitEmpty(b, "reference", r.Reference)
	b = omitEmpty(b, "type", r.Type)
	if r.Identifier != nil {
		b = append(member(b, "identifier"), '{')
		b = omitEmpty(b, "system", r.Identifier.System)
		b = fhir.AppendString(member(b, "value"), r.Identifier.Value)
		b = append(b, '}')
	}
	b = omitEmpty(b, "display", r.Display)
	return append(b, '}')
}

func (a *aeAgent) appendJSON(b []byte) []byte {
	b = append(b, `{"who":`...)
	b = a.Who.appendJSON(b)
	if a.AltID != "" {
		b = fhir.AppendString(append(b, `,"altId":`...), a.AltID)
	}
	if a.Requestor {
		b = append(b, `,"requestor":true`...)
	} else {
		b = append(b, `,"requestor":false`...)
	}
	if a.Network != nil {
		b = fhir.AppendString(append(b, `,"network":{"address":`...), a.Network.Address)
		b = fhir.AppendString(append(b, `,"type":`...), a.Network.Type)
		b = append(b, '}')
	}
	return append(b, '}')
}

func (e *aeEntity) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if e.What != nil {
		b = e.What.appendJSON(member(b, "what"))
	}
	if e.Type != nil {
		b = e.Type.appendJSON(member(b, "type"))
	}
	if e.Role != nil {
		b = e.Role.appendJSON(member(b, "role"))
	}
	b = omitEmpty(b, "description", e.Description)
	b = omitEmpty(b, "query", e.Query)
	if len(e.Detail) > 0 {
		b = append(member(b, "detail"), '[')
		for i, d := range e.Detail {
			if i > 0 {
				b = append(b, ',')
			}
			b = fhir.AppendString(append(b, `{"type":`...), d.Type)
			b = fhir.AppendString(append(b, `,"valueString":`...), d.ValueString)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
