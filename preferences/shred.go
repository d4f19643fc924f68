package preferences

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"go.etcd.io/bbolt"
)

// shredChunk is how much of the data file shred reads at a time.
const shredChunk = 4 << 20

// shred overwrites with zeros every copy of the secrets left in the data file. bbolt
// never overwrites a page in place: a deleted value lives on in the freed pages of
// earlier versions of its tree until they happen to be reused. Deleting a data key is
// only crypto-shredding if those copies go too, so after an erasure has committed the
// whole file is scanned for the wrapped key, inside a write transaction so that no
// other writer is reusing a freed page meanwhile. Live data never holds the key any
// more; a read transaction older than the erasure that still reads that key gets
// zeros, which fail to unwrap (it was reading an erased subscriber).
func (s *Store) shred(secrets ...[]byte) (int, error) {
	longest := 0
	for _, secret := range secrets {
		if len(secret) < 16 {
			return 0, fmt.Errorf("shred: refusing to scan for %d bytes", len(secret))
		}
		longest = max(longest, len(secret))
	}
	found := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		f, err := os.OpenFile(tx.DB().Path(), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, shredChunk+longest-1)
		zeros := make([]byte, longest)
		for off := int64(0); ; off += shredChunk {
			n, err := f.ReadAt(buf, off)
			if err != nil && err != io.EOF {
				return err
			}
			for _, secret := range secrets {
				for i := 0; ; {
					j := bytes.Index(buf[i:n], secret)
					if j < 0 {
						break
					}
					if _, err := f.WriteAt(zeros[:len(secret)], off+int64(i+j)); err != nil {
						return err
					}
					found++
					i += j + len(secret)
				}
			}
			if n < len(buf) {
				break
			}
		}
		if found > 0 {
			return f.Sync()
		}
		return nil
	})
	return found, err
}
