// Package grafana holds the tests of the hellopics Grafana dashboard,
// hellopics.json: it is an importable dashboard (a datasource input,
// unique panel ids, every query on the Prometheus datasource variable),
// and every query parses as PromQL (`promtool check rules` on the
// queries, Grafana's variables replaced). e2e/TestMetricsLive checks
// that the metrics it uses exist in a live scrape.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type target struct {
	Expr       string `json:"expr"`
	RefID      string `json:"refId"`
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Desc       string `json:"description"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []target                 `json:"targets"`
}

type dashboard struct {
	Inputs []struct {
		Name, Type, PluginID string
	} `json:"__inputs"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

const dsVar = "${DS_PROMETHEUS}"

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("hellopics.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("hellopics.json: %v", err)
	}
	return d
}

// TestDashboardShape checks what an import needs: a uid, a schema
// version Grafana 10 and 11 read, the DS_PROMETHEUS input and variable,
// every query panel on it with a description, queries with refIds, and
// panels on the 24-column grid without overlap.
func TestDashboardShape(t *testing.T) {
	d := load(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both must be set", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("schemaVersion %d; want 36..41 (Grafana 9.3 to 11)", d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v; want one prometheus datasource DS_PROMETHEUS", d.Inputs)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	for name, typ := range map[string]string{"DS_PROMETHEUS": "datasource", "instance": "query", "pair": "query", "data": "query"} {
		if vars[name] != typ {
			t.Errorf("template variable %s is %q; want a %s variable", name, vars[name], typ)
		}
	}
	ids := map[int]string{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	queries := 0
	for _, p := range d.Panels {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d of %q is %q's too", p.ID, p.Title, other)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v is off the 24-column grid", p.Title, p.GridPos)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if o, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", o, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsVar {
			t.Errorf("panel %q: datasource %+v; want uid %s", p.Title, p.Datasource, dsVar)
		}
		if p.Desc == "" {
			t.Errorf("panel %q has no description", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			queries++
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: query %+v: empty or duplicate refId or expr", p.Title, tg)
			}
			refs[tg.RefID] = true
			if tg.Datasource.UID != dsVar {
				t.Errorf("panel %q query %s: datasource uid %q; want %s", p.Title, tg.RefID, tg.Datasource.UID, dsVar)
			}
		}
	}
	if queries < 20 {
		t.Errorf("%d queries; the dashboard lost its panels", queries)
	}
}

// grafanaVars are the values the queries' variables take for the parse
// check: what Grafana substitutes (a multi-value variable becomes a
// regex alternative).
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "15s",
	"$__range", "1h",
	"$instance", "a:9101|b:9101",
	"$pair", "pic0",
	"$data", ".*",
)

// TestDashboardPromQL writes every query, its variables replaced, as a
// recording rule and has `promtool check rules` parse them all.
func TestDashboardPromQL(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus; .ci/run installs it): the queries are not parsed")
	}
	d := load(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			expr := grafanaVars.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q query %s: a variable the test does not know: %s", p.Title, tg.RefID, expr)
			}
			q, _ := json.Marshal(expr) // a JSON string is a YAML string
			fmt.Fprintf(&b, "      - record: dashboard:panel%d:%s\n        expr: %s\n", p.ID, strings.ToLower(tg.RefID), q)
			n++
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's %d queries: %v\n%s", n, err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", n); !strings.Contains(string(out), want) {
		t.Fatalf("promtool check rules: %q; want %q", out, want)
	}
	t.Logf("%d queries parse", n)
}
