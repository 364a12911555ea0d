package infra

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/go/callgraph/rta"
	"golang.org/x/tools/go/packages"
	"golang.org/x/tools/go/ssa"
	"golang.org/x/tools/go/ssa/ssautil"
)

// sdkServicePrefix is the import path of the AWS SDK's service clients; an operation Op of
// service svc is called with an svc.OpInput.
const sdkServicePrefix = "github.com/aws/aws-sdk-go-v2/service/"

// sdkCalls lists the AWS API operations a binary of the main module can call, as IAM actions
// ("kinesis:PutRecords"), each with the packages that reference its <Op>Input type. It reads the
// code, not a list: `go list -deps` gives every package linked into the binary (for the
// deployed platform, linux/arm64), and go/parser finds every svc.XxxInput they mention, ours and
// the libraries' (vmware-go-kcl-v2) alike. The SDK's own packages are left out: they define
// every operation of their service, and their credential providers (STS, SSO) are never reached
// where the runtime hands out the role's credentials (Lambda, ECS).
func sdkCalls(t *testing.T, binary string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json", binary)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", binary, err, stderr.String())
	}
	calls := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var pkg struct {
			ImportPath, Dir string
			GoFiles         []string
			Standard        bool
		}
		if err := dec.Decode(&pkg); err != nil {
			t.Fatal(err)
		}
		if pkg.Standard || strings.HasPrefix(pkg.ImportPath, "github.com/aws/aws-sdk-go-v2/") {
			continue
		}
		for _, f := range pkg.GoFiles {
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(pkg.Dir, f), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatalf("parse %s/%s: %v", pkg.ImportPath, f, err)
			}
			services := map[string]string{} // local name -> service
			for _, im := range file.Imports {
				path, _ := strconv.Unquote(im.Path.Value)
				svc, ok := strings.CutPrefix(path, sdkServicePrefix)
				if !ok || strings.Contains(svc, "/") {
					continue
				}
				local := svc
				if im.Name != nil {
					local = im.Name.Name
				}
				services[local] = svc
			}
			if len(services) == 0 {
				continue
			}
			ast.Inspect(file, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				op, isInput := strings.CutSuffix(sel.Sel.Name, "Input")
				if svc, ok := services[x.Name]; ok && isInput && op != "" {
					action := svc + ":" + op
					if !slices.Contains(calls[action], pkg.ImportPath) {
						calls[action] = append(calls[action], pkg.ImportPath)
					}
				}
				return true
			})
		}
	}
	return calls
}

// sdkCallsFrom lists the AWS API operations reachable from one function of the main module (its
// entry point, e.g. a command's run function), each with the packages of the functions that
// reference its <Op>Input type. A binary that bundles several commands (kclctl) links calls its
// deployed command never makes; the package scan of sdkCalls would grant them all. This follows
// the code instead: the program is built in SSA form (for linux/arm64, as deployed) and rapid
// type analysis finds every function reachable from entry, interface calls and closures included;
// each reachable function outside the SDK is searched for values of an SDK <Op>Input type, and
// for calls whose signature takes one (so a call with a nil input counts too).
func sdkCallsFrom(t *testing.T, binary, entry string) map[string][]string {
	t.Helper()
	slash := strings.LastIndex(entry, "/")
	dot := strings.Index(entry[slash+1:], ".")
	pkgPath, fnName := entry[:slash+1+max(dot, 0)], entry[slash+2+dot:]
	if dot < 0 {
		t.Fatalf("entry %q: want <package>.<function> or <package>.(*T).method", entry)
	}
	cfg := &packages.Config{Mode: packages.LoadAllSyntax, Dir: repoRoot,
		Env: append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")}
	pkgs, err := packages.Load(cfg, binary)
	if err != nil {
		t.Fatalf("load %s: %v", binary, err)
	}
	if n := packages.PrintErrors(pkgs); n > 0 {
		t.Fatalf("load %s: %d errors", binary, n)
	}
	prog, _ := ssautil.AllPackages(pkgs, ssa.InstantiateGenerics)
	prog.Build()
	var root *ssa.Function
	if pkg := prog.ImportedPackage(pkgPath); pkg != nil {
		if recv, method, isMethod := strings.Cut(strings.TrimPrefix(fnName, "(*"), ")."); isMethod {
			if tn, ok := pkg.Members[recv].(*ssa.Type); ok {
				ms := prog.MethodSets.MethodSet(types.NewPointer(tn.Type()))
				for i := range ms.Len() {
					if ms.At(i).Obj().Name() == method {
						root = prog.MethodValue(ms.At(i))
					}
				}
			}
		} else if fn, ok := pkg.Members[fnName].(*ssa.Function); ok {
			root = fn
		}
	}
	if root == nil {
		t.Fatalf("entry %s not found in %s", entry, binary)
	}
	calls := map[string][]string{}
	for fn := range rta.Analyze([]*ssa.Function{root}, false).Reachable {
		if fn.Pkg == nil || strings.HasPrefix(fn.Pkg.Pkg.Path(), "github.com/aws/aws-sdk-go-v2/") {
			continue
		}
		// An operation shows as a value of its input type (an allocation, a conversion) or as a
		// call whose signature takes one (an API interface's method called with a nil input).
		var seen []types.Type
		for _, b := range fn.Blocks {
			for _, ins := range b.Instrs {
				if v, ok := ins.(ssa.Value); ok {
					seen = append(seen, v.Type())
				}
				if c, ok := ins.(ssa.CallInstruction); ok {
					params := c.Common().Signature().Params()
					for i := range params.Len() {
						seen = append(seen, params.At(i).Type())
					}
				}
			}
		}
		for _, typ := range seen {
			if p, ok := typ.(*types.Pointer); ok {
				typ = p.Elem()
			}
			named, ok := typ.(*types.Named)
			if !ok || named.Obj().Pkg() == nil {
				continue
			}
			svc, ok := strings.CutPrefix(named.Obj().Pkg().Path(), sdkServicePrefix)
			op, isInput := strings.CutSuffix(named.Obj().Name(), "Input")
			if !ok || strings.Contains(svc, "/") || !isInput || op == "" {
				continue
			}
			action, from := svc+":"+op, fn.Pkg.Pkg.Path()
			if !slices.Contains(calls[action], from) {
				calls[action] = append(calls[action], from)
			}
		}
	}
	return calls
}

// iamService maps an SDK service package to its IAM prefix where the two differ.
var iamService = map[string]string{"applicationautoscaling": "application-autoscaling"}

// notReached are SDK calls that a binary references but cannot make as deployed, so its role
// does not grant them; each names the only packages it may come from (a reference from anywhere
// else must be granted, or listed here with its reason).
type notReached struct {
	packages []string
	reason   string
}

// roleSync describes one deployed binary and the role it runs with.
type roleSync struct {
	binary string
	// entry, when set, is the function the deployed command runs (sdkCallsFrom); otherwise every
	// package linked into binary counts (sdkCalls).
	entry  string
	roleID func(t *testing.T, s *synthed) string
	// ignoredPackages are linked into the binary but never run there.
	ignoredPackages map[string]string
	withheld        map[string]notReached
	// extra are actions granted without a call in the binary's code, each with the reason.
	extra map[string]string
}

var kclFanOut = notReached{
	packages: []string{"github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"},
	reason:   "the KCL's enhanced fan-out consumer (worker-fan-out.go, fan-out-shard-consumer.go); the worker runs the polling consumer and never enables fan-out",
}

var roleSyncs = []roleSync{
	{
		binary: "./cmd/worker",
		roleID: workerRoleID,
		ignoredPackages: map[string]string{
			"github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint": "the KCL's own DynamoCheckpoint; the worker plugs checkpoint.Store in instead (worker.WithCheckpointer), so its calls are never made",
		},
		withheld: map[string]notReached{
			"kinesis:DescribeStream":         kclFanOut,
			"kinesis:DescribeStreamConsumer": kclFanOut,
			"kinesis:RegisterStreamConsumer": kclFanOut,
			"kinesis:SubscribeToShard":       kclFanOut,
			"dynamodb:CreateTable": {
				packages: []string{"github.com/kinesis-events/pipeline/checkpoint"},
				reason:   "checkpoint/ creates the lease table only when it finds it missing; on AWS the stack owns it (customer-managed key, point-in-time recovery, deletion protection), so a worker that finds it gone must fail loudly, not create an unprotected copy",
			},
		},
		extra: map[string]string{
			"kms:Decrypt":          "Kinesis GetRecords on a stream encrypted with the customer-managed key, and Secrets Manager GetSecretValue, decrypt with the caller's permission (limited by kms:ViaService)",
			"kms:GenerateDataKey":  "Kinesis PutRecords to a stream encrypted with the customer-managed key needs the caller's permission (limited by kms:ViaService)",
			"logs:CreateLogStream": "the metrics sidecar (ADOT collector, awsemf exporter) writes its log group with the task role",
			"logs:PutLogEvents":    "the metrics sidecar (ADOT collector, awsemf exporter) writes its log group with the task role",
		},
	},
	{
		binary: "./cmd/kclctl",
		entry:  "github.com/kinesis-events/pipeline/internal/kclctl.(*App).runAutoscaler",
		roleID: autoscalerRoleID,
		extra: map[string]string{
			"kms:Decrypt":          "Kinesis GetRecords on the raw stream (the fleet's lag) decrypts with the caller's permission, and so do DynamoDB's reads of a table under the customer-managed key, as for the worker (limited by kms:ViaService)",
			"kms:GenerateDataKey":  "DynamoDB writes (the leader lease and state rows) to a table under the customer-managed key, as for the worker (limited by kms:ViaService)",
			"ecs:DescribeServices": "Application Auto Scaling checks that the caller of RegisterScalableTarget for an ECS service may describe it (AWS's page on the IAM permissions of ECS service auto scaling)",
			"ecs:UpdateService":    "Application Auto Scaling checks that the caller of RegisterScalableTarget for an ECS service may update it (same page)",
		},
	},
	{
		binary: "./cmd/forwarder",
		roleID: forwarderRoleID,
		extra: map[string]string{
			"kms:GenerateDataKey":  "Kinesis PutRecords to an encrypted stream, and Lambda's SendMessage to the encrypted failure queue, need the role's permission (limited by kms:ViaService)",
			"kms:Decrypt":          "SQS SendMessage to a queue encrypted with a customer-managed key needs kms:Decrypt too (limited by kms:ViaService)",
			"sqs:SendMessage":      "Lambda delivers a failed asynchronous invocation to the on-failure destination (the failure queue) with the function's role",
			"logs:CreateLogStream": "the Lambda runtime writes the function's log group with the function's role",
			"logs:PutLogEvents":    "the Lambda runtime writes the function's log group with the function's role",
		},
	},
}

// TestRolesMatchTheCodesSDKCalls keeps each role's actions equal to the calls its binary makes:
// a call added in the code without a grant fails here (it would be AccessDenied on AWS), and so
// does a grant the code no longer needs. The lists above are the only deliberate differences.
func TestRolesMatchTheCodesSDKCalls(t *testing.T) {
	for _, rs := range roleSyncs {
		t.Run(strings.TrimPrefix(rs.binary, "./cmd/"), func(t *testing.T) {
			var calls map[string][]string
			if rs.entry != "" {
				calls = sdkCallsFrom(t, rs.binary, rs.entry)
			} else {
				calls = sdkCalls(t, rs.binary)
			}
			for action, pkgs := range calls {
				svc, op, _ := strings.Cut(action, ":")
				if iam, ok := iamService[svc]; ok {
					delete(calls, action)
					calls[iam+":"+op] = pkgs
				}
			}
			if len(calls) == 0 {
				t.Fatalf("no SDK calls found in %s: the scan is broken", rs.binary)
			}
			want := map[string]bool{}
			for action, pkgs := range calls {
				var from []string
				for _, p := range pkgs {
					if _, ok := rs.ignoredPackages[p]; !ok {
						from = append(from, p)
					}
				}
				if len(from) == 0 {
					continue
				}
				if w, ok := rs.withheld[action]; ok && !slices.ContainsFunc(from, func(p string) bool { return !slices.Contains(w.packages, p) }) {
					continue
				}
				want[action] = true
			}
			for action, reason := range rs.extra {
				if calls[action] != nil {
					t.Errorf("%s is on the extra list (%s) but the code calls it: take it off the list", action, reason)
				}
				want[action] = true
			}
			for action, w := range rs.withheld {
				if calls[action] == nil {
					t.Errorf("%s is withheld (%s) but nothing references it any more: take it off the list", action, w.reason)
				}
			}
			granted := map[string]bool{}
			for action := range grants(fx.roleStatements(t, rs.roleID(t, &fx))) {
				granted[action] = true
			}
			for action := range want {
				if !granted[action] {
					t.Errorf("%s calls %s (from %v) but its role does not grant it", rs.binary, action, calls[action])
				}
			}
			for action := range granted {
				if !want[action] {
					t.Errorf("the role of %s grants %s, which its code never calls", rs.binary, action)
				}
			}
		})
	}
}

// tableOfPackage says which table a package's DynamoDB calls go to.
var tableOfPackage = map[string]string{
	"github.com/kinesis-events/pipeline/checkpoint": LeaseTable,
	"github.com/kinesis-events/pipeline/processors": DedupeTable,
}

// TestWorkerTableGrantsFollowTheCode: each DynamoDB action is granted on exactly the tables of
// the packages that call it (the lease store's on the lease table, dedupe's on the dedupe table).
func TestWorkerTableGrantsFollowTheCode(t *testing.T) {
	rs := roleSyncs[0]
	want := map[string][]string{}
	for action, pkgs := range sdkCalls(t, rs.binary) {
		if !strings.HasPrefix(action, "dynamodb:") {
			continue
		}
		pkgs = slices.DeleteFunc(slices.Clone(pkgs), func(p string) bool { _, ok := rs.ignoredPackages[p]; return ok })
		if w, ok := rs.withheld[action]; ok && !slices.ContainsFunc(pkgs, func(p string) bool { return !slices.Contains(w.packages, p) }) {
			continue
		}
		for _, p := range pkgs {
			table, ok := tableOfPackage[p]
			if !ok {
				t.Errorf("package %s calls %s: add it to tableOfPackage with the table it uses", p, action)
				continue
			}
			if !slices.Contains(want[action], table) {
				want[action] = append(want[action], table)
			}
		}
	}
	tableOf := map[string]string{}
	for id, props := range resources("AWS::DynamoDB::Table") {
		tableOf[jsonOf(getAtt(id, "Arn"))] = strings.TrimPrefix(props["TableName"].(string), fx.cfg.Stage+"-")
	}
	got := map[string][]string{}
	for action, res := range grants(fx.roleStatements(t, workerRoleID(t, &fx))) {
		if !strings.HasPrefix(action, "dynamodb:") {
			continue
		}
		for _, r := range res {
			got[action] = append(got[action], tableOf[r])
		}
	}
	for _, m := range []map[string][]string{want, got} {
		for a := range m {
			sort.Strings(m[a])
		}
	}
	if jsonOf(got) != jsonOf(want) {
		t.Errorf("DynamoDB grants per table:\n got %v\nwant %v (from the code)", got, want)
	}
}
