// Package secretsfake is the tests' in-memory Secrets Manager GetSecretValue, for the code that
// loads signing keys from a secret (event/secretsmgr) and its leak test (event/leaktest). No
// Secrets Manager emulator runs on the test machines, so the one call is faked: it answers the
// value and error the test set last, and records every request. It does not look at the request's
// secret id or version stage; the tests read the requests back to check them.
//
// A Fake is safe for concurrent use: a test may change the answer while a reload loop calls it.
package secretsfake
