// Package ids makes the server's logical ids.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// New returns a UUID version 7 (RFC 9562): the time in milliseconds, then
// 74 random bits. Ids that grow with time put each new row at the end of
// the store's indexes on ids (and of a token's range, which lists ids in
// order) instead of on a random page of trees that grow with the record;
// the random bits keep them unguessable and unique.
func New() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	ms := uint64(time.Now().UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
