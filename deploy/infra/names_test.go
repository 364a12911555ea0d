package infra

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

// namesFile is the one definition of the default names, in the main module.
var namesFile = filepath.Join(repoRoot, "internal", "names", "names.go")

// stringDecls returns the string constants and string-slice variables a Go file declares at top
// level, by name.
func stringDecls(t *testing.T, path string) (consts map[string]string, lists map[string][]string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	consts, lists = map[string]string{}, map[string][]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || (gd.Tok != token.CONST && gd.Tok != token.VAR) {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				switch v := vs.Values[i].(type) {
				case *ast.BasicLit:
					if s, err := strconv.Unquote(v.Value); err == nil && v.Kind == token.STRING {
						consts[name.Name] = s
					}
				case *ast.CompositeLit:
					var l []string
					for _, e := range v.Elts {
						if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
							s, _ := strconv.Unquote(bl.Value)
							l = append(l, s)
						}
					}
					lists[name.Name] = l
				}
			}
		}
	}
	return consts, lists
}

// TestNamesMatchTheMainModule keeps names.go an exact copy of internal/names/names.go: the same
// string constants and the same StandardTypes, so the stack names what the binaries default to.
func TestNamesMatchTheMainModule(t *testing.T) {
	want, wantLists := stringDecls(t, namesFile)
	got, gotLists := stringDecls(t, "names.go")
	if len(want) == 0 || len(wantLists["StandardTypes"]) == 0 {
		t.Fatalf("%s declares no names (%v, %v): the parse is broken or the file moved", namesFile, want, wantLists)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deploy/infra/names.go constants differ from %s:\n got %v\nwant %v", namesFile, got, want)
	}
	if !slices.Equal(gotLists["StandardTypes"], wantLists["StandardTypes"]) {
		t.Errorf("StandardTypes = %v, want %v (from %s)", gotLists["StandardTypes"], wantLists["StandardTypes"], namesFile)
	}
}
