package main

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list` with the project's build tag.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-tags", "duckdb_arrow"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

// TestLayout keeps the package borders of SPEC §2: the export pipeline and
// its encoders link no HTTP server, job store or mail library, and exactly
// one package imports Echo.
func TestLayout(t *testing.T) {
	forbidden := []string{"github.com/labstack/echo", "go.etcd.io/bbolt", "github.com/wneessen/go-mail"}
	for _, pkg := range []string{"worklog/export", "worklog/query", "worklog/privacy", "worklog/data", "worklog/ingest"} {
		for _, dep := range goList(t, "-deps", pkg) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
		// Libraries below may use net/http themselves; our own code must not.
		for _, imp := range goList(t, "-f", `{{join .Imports " "}}`, pkg) {
			if imp == "net/http" || strings.HasPrefix(imp, "net/http/") {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
	// The store publishes to Iceberg through data.Publisher; only
	// data/iceberg links iceberg-go.
	for _, pkg := range []string{"worklog/data", "worklog/query", "worklog/privacy", "worklog/ingest", "worklog/export"} {
		for _, dep := range goList(t, "-deps", pkg) {
			if strings.HasPrefix(dep, "github.com/apache/iceberg-go") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
	// The jobs package (and its River backend) runs exports and mails
	// them; the HTTP layer hands it paths, never a request.
	for _, imp := range goList(t, "-f", `{{join .Imports " "}}`, "worklog/export/jobs") {
		if imp == "net/http" || strings.HasPrefix(imp, "net/http/") || strings.HasPrefix(imp, "github.com/labstack/echo") {
			t.Errorf("worklog/export/jobs imports %s", imp)
		}
	}
	var echoImporters []string
	for _, line := range goList(t, "-f", "{{.ImportPath}}:{{join .Imports \",\"}}", "./...") {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Split(imports, ",") {
			if strings.HasPrefix(imp, "github.com/labstack/echo") {
				echoImporters = append(echoImporters, pkg)
				break
			}
		}
	}
	if len(echoImporters) != 1 || echoImporters[0] != "worklog/export/api" {
		t.Errorf("packages importing Echo: %v, want only worklog/export/api", echoImporters)
	}
}
