package e2e

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of TestLogsGolden under testdata/logs")

// TestLogsGolden: the INFO, WARN and ERROR lines of a normal start (two
// mgmt instances, ctrl and data) and of a failover (the master killed)
// are those of testdata/logs/*.golden, compared as (process, logger,
// level, message, keys) without the values. Within a process the order
// of a start or failover has legitimate races (ctrl may hear of data
// from mgmt before or after data connects), so each process's entries
// are compared as sorted sets: a line retried (data dialling ctrl again
// after losing the epoch race) or periodic (the hello cycle summary)
// counts once. Adding an INFO line to a normal start fails
// this test: regenerate with
//
//	go test -run TestLogsGolden ./e2e/ -update
//
// and check docs/logs.md.
func TestLogsGolden(t *testing.T) {
	skipShort(t)
	flags := []string{"-nopreempt", "-hello-summary", "300ms"}
	h := newHACluster(t, fast, haSpec{id: "a", priority: 200, flags: flags}, haSpec{id: "b", priority: 100, flags: flags})
	a := h.StartMgmt("a")
	b := h.StartMgmt("b")
	ctrl, data := h.StartPair(haPair)
	master, _ := h.WaitMaster()
	if master.id != "a" {
		t.Fatalf("master is %s, want a\n%s", master.id, h.Tails())
	}
	h.WaitCycle("a", 0, haPair, 3)
	h.WaitSynced("a", "b", haPair)
	a.WaitFor(0, msg("hello cycle summary"))
	procs := []*proc{a, b, ctrl, data}
	marks := make([]int, len(procs))
	var start []string
	for i, p := range procs {
		marks[i] = p.Mark()
		start = append(start, goldenEntries(p.name, p.Lines(0)[:marks[i]])...)
	}
	checkGolden(t, "start", start)

	a.Kill()
	b.WaitFor(marks[1], step("became_master", ""))
	pos := h.WaitCycle("b", marks[1], haPair, 3)
	b.WaitFor(pos, msg("hello cycle summary"))
	var failover []string
	for i, p := range procs[1:] {
		i++
		failover = append(failover, goldenEntries(p.name, p.Lines(marks[i]))...)
	}
	checkGolden(t, "failover", failover)
}

// goldenEntries are the INFO, WARN and ERROR lines of process name as
// "process | logger | level | message | keys", each distinct entry once,
// sorted.
func goldenEntries(name string, lines []logLine) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lines {
		if l.Fields == nil {
			continue
		}
		lvl := l.Str("@level")
		if lvl != "info" && lvl != "warn" && lvl != "error" {
			continue
		}
		var keys []string
		for k := range l.Fields {
			if strings.HasPrefix(k, "@") || k == "suppressed" {
				continue
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(keys) == 0 {
			keys = []string{"-"}
		}
		e := fmt.Sprintf("%s | %s | %s | %s | %s", name, l.Str("@module"), lvl, l.Msg(), strings.Join(keys, ","))
		if seen[e] {
			continue
		}
		seen[e] = true
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// checkGolden compares got with testdata/logs/name.golden, one entry a
// line. A line "? entry" is optional: an entry of a legitimate race
// (data re-registered with the new master before or after its ctrl
// link noticed anything) that may or may not appear. -update rewrites
// the file from got, keeping the optional lines.
func checkGolden(t *testing.T, name string, got []string) {
	t.Helper()
	path := filepath.Join("testdata", "logs", name+".golden")
	var required []string
	optional := map[string]bool{}
	if b, err := os.ReadFile(path); err == nil {
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if e, ok := strings.CutPrefix(l, "? "); ok {
				optional[e] = true
			} else if l != "" {
				required = append(required, l)
			}
		}
	} else if !*updateGolden {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if *updateGolden {
		var lines []string
		for _, g := range got {
			if !optional[g] {
				lines = append(lines, g)
			}
		}
		for e := range optional {
			lines = append(lines, "? "+e)
		}
		slices.Sort(lines)
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var diff []string
	for _, w := range required {
		if !slices.Contains(got, w) {
			diff = append(diff, "- "+w)
		}
	}
	for _, g := range got {
		if !optional[g] && !slices.Contains(required, g) {
			diff = append(diff, "+ "+g)
		}
	}
	if len(diff) > 0 {
		t.Errorf("%s: the log lines differ from %s (- missing, + new; if intended, run with -update and update docs/logs.md):\n%s\ngot:\n%s",
			name, path, strings.Join(diff, "\n"), strings.Join(got, "\n"))
	}
}

// TestLogsDocumented: every message of a log call at INFO, WARN or
// ERROR in the daemons' source, and every entry of the golden files, is
// in docs/logs.md (as `message`). The handshake machines' messages are
// checked through the golden files.
func TestLogsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "logs.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := func(m string) bool { return strings.Contains(string(doc), "`"+m+"`") }
	// log.Info("message", ...) or, rate-limited, rl.Warn("rule", "message", ...).
	call := regexp.MustCompile(`\.(?:Info|Warn|Error)\("([^"]*)"(?:\+[^,]+)?(?:, "([^"]+)")?`)
	var missing []string
	for _, root := range []string{"cmd", "pkg", "mgmt", "ctrl", "data", "internal"} {
		err := filepath.WalkDir(filepath.Join("..", root), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
				strings.Contains(path, filepath.Join("internal", "sim")) {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "//") {
					continue
				}
				for _, m := range call.FindAllStringSubmatch(line, -1) {
					if m[2] == "" && strings.Contains(m[0], "+") {
						continue // a rate-limited line whose message is a variable: documented at its callers
					}
					if !documented(m[1]) && (m[2] == "" || !documented(m[2])) {
						missing = append(missing, fmt.Sprintf("%s: %q", path, m[0]))
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"start", "failover"} {
		b, err := os.ReadFile(filepath.Join("testdata", "logs", name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if f := strings.Split(strings.TrimPrefix(l, "? "), " | "); len(f) == 5 && !documented(f[3]) {
				missing = append(missing, fmt.Sprintf("%s.golden: %q", name, f[3]))
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("log messages not in docs/logs.md:\n%s", strings.Join(missing, "\n"))
	}
}
