package infra

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goldenTemplate is the reviewed template of the fx stack. A change to the stack shows here as a
// diff to review; `UPDATE_GOLDEN=1 make deploy-test` (or `UPDATE_GOLDEN=1 go test ./infra -run
// TestTemplateSnapshot` in deploy/) rewrites it.
var goldenTemplate = filepath.Join("testdata", "template.test.json")

// assetHash matches the content hashes CDK names assets by (the Lambda zip, the image tags, the
// staged directories). They change with any byte of the repository (the worker image's build
// context), so the snapshot holds a placeholder instead.
var assetHash = regexp.MustCompile(`[0-9a-f]{64}`)

// snapshot renders a template with asset hashes replaced, keys sorted, indented.
func snapshot(t *testing.T, s *synthed) []byte {
	t.Helper()
	b, err := json.MarshalIndent(*s.tpl.ToJSON(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(assetHash.ReplaceAll(b, []byte("<asset-hash>")), '\n')
}

func TestTemplateSnapshot(t *testing.T) {
	got := snapshot(t, &fx)
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(goldenTemplate, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes): review the diff before committing it", goldenTemplate, len(got))
		return
	}
	want, err := os.ReadFile(goldenTemplate)
	if err != nil {
		t.Fatalf("%v: create it with UPDATE_GOLDEN=1", err)
	}
	if string(got) == string(want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	i := 0
	for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
		i++
	}
	from := max(0, i-8)
	t.Errorf("the synthesised template differs from %s from line %d:\n--- golden\n%s\n+++ synthesised\n%s\n"+
		"If the change is intended, review it and run UPDATE_GOLDEN=1 make deploy-test.",
		goldenTemplate, i+1, strings.Join(wl[from:min(len(wl), i+8)], "\n"), strings.Join(gl[from:min(len(gl), i+8)], "\n"))
}

// TestSnapshotIsStableAgainstAssetHashes: nothing hash-like survives the normalisation, and the
// placeholder is where the assets are, so a commit elsewhere in the repository (a new worker
// image hash) leaves the snapshot as it is.
func TestSnapshotIsStableAgainstAssetHashes(t *testing.T) {
	s := string(snapshot(t, &fx))
	if n := strings.Count(s, "<asset-hash>"); n < 3 {
		t.Errorf("%d asset-hash placeholders; want the Lambda code, the worker image and the collector image at least", n)
	}
	if m := regexp.MustCompile(`[0-9a-f]{32,}`).FindString(s); m != "" {
		t.Errorf("the snapshot still holds a hash-like string %q, which would change between builds", m)
	}
}
