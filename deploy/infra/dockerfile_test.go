package infra

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// There is no Docker engine on the build machines, so the Dockerfile is kept
// correct by construction: these checks pin what the image must be, and
// `make image-binaries` runs the builder stage's `go build` commands.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, drop comments.
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	var froms, stages []string
	instr := map[string][]string{}
	for _, l := range lines {
		op, rest, _ := strings.Cut(l, " ")
		op = strings.ToUpper(op)
		instr[op] = append(instr[op], rest)
		if op == "FROM" {
			froms = append(froms, rest)
			if _, name, ok := strings.Cut(strings.ToLower(rest), " as "); ok {
				stages = append(stages, strings.TrimSpace(name))
			}
		}
	}
	if len(froms) < 2 || !strings.Contains(froms[0], "golang:1.26") {
		t.Errorf("want a golang:1.26 builder stage first and a runtime stage, got FROM %v", froms)
	}
	runtime := froms[len(froms)-1]
	if !strings.HasPrefix(runtime, "alpine:") {
		t.Errorf("runtime stage %q: want alpine (busybox wget serves the health check)", runtime)
	}
	run := strings.Join(instr["RUN"], "\n") + strings.Join(instr["ENV"], "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/worker", "./cmd/kclctl"} {
		if !strings.Contains(run, want) {
			t.Errorf("Dockerfile RUN/ENV lacks %q", want)
		}
	}
	if copies := strings.Join(instr["COPY"], "\n"); !strings.Contains(copies, "/etc/ssl/certs/ca-certificates.crt") {
		t.Error("the runtime stage gets no CA certificates")
	}
	// Nothing may run in the runtime stage: it would need emulation to build
	// an arm64 image on x86.
	if last := strings.LastIndex(text, "FROM "); strings.Contains(text[last:], "\nRUN ") {
		t.Error("the runtime stage has a RUN instruction")
	}
	for _, cmd := range []string{"cmd/worker", "cmd/kclctl"} {
		if _, err := os.Stat(filepath.Join(repoRoot, cmd)); err != nil {
			t.Errorf("the image builds ./%s: %v", cmd, err)
		}
	}
	for _, c := range instr["COPY"] {
		if m := regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(c); m != nil && !slices.Contains(stages, m[1]) {
			t.Errorf("COPY --from=%s: no such stage (stages %v)", m[1], stages)
		}
	}
	users := instr["USER"]
	if len(users) == 0 || regexp.MustCompile(`^(0|root)(:|$)`).MatchString(users[len(users)-1]) {
		t.Errorf("USER %v: want a non-root user", users)
	}
	if !slices.Contains(instr["EXPOSE"], "9090") {
		t.Errorf("EXPOSE %v: want 9090", instr["EXPOSE"])
	}
	if ep := instr["ENTRYPOINT"]; len(ep) != 1 || !strings.Contains(ep[0], "/worker\"") {
		t.Errorf("ENTRYPOINT %v: want the worker", ep)
	}
	// The image's HEALTHCHECK and the ECS health check probe the same way.
	hc := instr["HEALTHCHECK"]
	if len(hc) != 1 {
		t.Fatalf("HEALTHCHECK %v", hc)
	}
	_, cmdJSON, _ := strings.Cut(hc[0], "CMD ")
	var cmd []string
	if err := json.Unmarshal([]byte(cmdJSON), &cmd); err != nil {
		t.Fatalf("HEALTHCHECK CMD %q is not exec form: %v", cmdJSON, err)
	}
	if !slices.Equal(append([]string{"CMD"}, cmd...), WorkerHealthCheck) {
		t.Errorf("HEALTHCHECK %v differs from the ECS health check %v", cmd, WorkerHealthCheck)
	}
}

func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			entries = append(entries, l)
		}
	}
	for _, want := range []string{".git", "**/node_modules", "bin", "**/cdk.out", "deploy"} {
		if !slices.Contains(entries, want) {
			t.Errorf(".dockerignore lacks %q (has %v)", want, entries)
		}
	}
}
