package election

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LoadEpoch reads the epoch saved at path by SaveEpoch. A missing file
// is epoch 0 (a first start); a file that cannot be parsed is an
// error, never 0, so that a damaged file cannot make the instance reuse
// an epoch.
func LoadEpoch(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("election: load epoch: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("election: load epoch from %s: %w", path, err)
	}
	if !ValidEpoch(n) {
		return 0, fmt.Errorf("election: load epoch from %s: %d is beyond the maximum epoch %d: the file is damaged or was forged; "+
			"check the epochs of the other instances (hellopics ctl status) and write one at or above the highest of them into the file",
			path, n, uint64(MaxEpoch))
	}
	return n, nil
}

// SaveEpoch durably replaces the epoch saved at path with n: it writes
// a temporary file in the same directory, syncs it, renames it over
// path and syncs the directory, so that after a crash path holds either
// the old or the new value, complete. The shell calls it for
// Ready.PersistEpoch before sending that Ready's messages.
func SaveEpoch(path string, n uint64) (err error) {
	if !ValidEpoch(n) {
		return fmt.Errorf("election: save epoch %d: beyond the maximum %d", n, uint64(MaxEpoch))
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("election: save epoch: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.WriteString(strconv.FormatUint(n, 10) + "\n"); err != nil {
		return fmt.Errorf("election: save epoch: write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("election: save epoch: sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("election: save epoch: close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("election: save epoch: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("election: save epoch: open dir: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("election: save epoch: sync dir %s: %w", dir, err)
	}
	return nil
}
