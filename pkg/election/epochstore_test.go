package election

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEpochStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "epoch")

	n, err := LoadEpoch(path)
	if err != nil || n != 0 {
		t.Fatalf("LoadEpoch(missing) = %d, %v; want 0, nil", n, err)
	}
	for _, want := range []uint64{1, 7, 1 << 60} {
		if err := SaveEpoch(path, want); err != nil {
			t.Fatalf("SaveEpoch(%d): %v", want, err)
		}
		if got, err := LoadEpoch(path); err != nil || got != want {
			t.Fatalf("LoadEpoch = %d, %v; want %d", got, err, want)
		}
	}
	// No temporary file is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want only the epoch file", len(entries))
	}
}

// TestEpochStoreCrashSafe checks what a crash can leave behind: a
// temporary file written but never renamed (a crash before the rename)
// must not change the loaded value, and the next save must succeed; a
// damaged file is an error, never epoch 0.
func TestEpochStoreCrashSafe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "epoch")
	if err := SaveEpoch(path, 5); err != nil {
		t.Fatal(err)
	}
	// A crash mid-save: a partial temporary file next to the real one.
	if err := os.WriteFile(filepath.Join(dir, ".epoch.tmp-123"), []byte("9"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := LoadEpoch(path); err != nil || n != 5 {
		t.Fatalf("after an interrupted save: %d, %v; want 5", n, err)
	}
	if err := SaveEpoch(path, 6); err != nil {
		t.Fatal(err)
	}
	if n, err := LoadEpoch(path); err != nil || n != 6 {
		t.Fatalf("after the next save: %d, %v; want 6", n, err)
	}

	for _, bad := range []string{"", "x", "-1", "18446744073709551616"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if n, err := LoadEpoch(path); err == nil {
			t.Errorf("LoadEpoch(%q) = %d, nil; want an error", bad, n)
		} else if !strings.HasPrefix(err.Error(), "election: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}

	// A failing save (directory missing) reports it and leaves nothing.
	if err := SaveEpoch(filepath.Join(dir, "missing", "epoch"), 1); err == nil {
		t.Errorf("SaveEpoch into a missing dir: no error")
	}
	// Reading a directory is an error, not epoch 0.
	if _, err := LoadEpoch(dir); err == nil {
		t.Errorf("LoadEpoch(dir): no error")
	}
}

// TestEpochStoreRestart is the end-to-end rule: an instance restarted
// from the stored epoch takes only epochs above it.
func TestEpochStoreRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "epoch")
	cfg := DefaultConfig("a", 1, Peer{ID: "b"})
	var last uint64
	for range 3 {
		stored, err := LoadEpoch(path)
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(cfg, stored)
		if err != nil {
			t.Fatal(err)
		}
		e.Tick(t0)
		e.Tick(t0.Add(cfg.deadAfter()))
		rd := e.Ready()
		if e.Role().String() != "MGMT_ROLE_MASTER" || rd.PersistEpoch != e.Epoch() || e.Epoch() <= last {
			t.Fatalf("restart from %d: role %v epoch %d persist %d, last %d", stored, e.Role(), e.Epoch(), rd.PersistEpoch, last)
		}
		if err := SaveEpoch(path, rd.PersistEpoch); err != nil {
			t.Fatal(err)
		}
		last = e.Epoch()
	}
}
