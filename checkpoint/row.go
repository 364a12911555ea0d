package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names. The first six are the KCL's own (vmware-go-kcl-v2's DynamoCheckpoint uses the
// same names, so its tables and tools stay compatible); the rest are ours.
const (
	attrShardID        = "ShardID"       // hash key, S
	attrOwner          = "AssignedTo"    // S
	attrLeaseTimeout   = "LeaseTimeout"  // S, RFC3339, UTC, fixed millisecond width; the writer's clock
	attrCheckpoint     = "Checkpoint"    // S, sequence number or SHARD_END
	attrParent         = "ParentShardId" // S
	attrClaim          = "ClaimRequest"  // S, worker id
	attrCounter        = "LeaseCounter"  // N, bumped by every write of the owner, taker or reset
	attrAdjacent       = "AdjacentParentShardId"
	attrOwnerSwitches  = "OwnerSwitches"  // N, number of times the lease changed hands
	attrClaimedAt      = "ClaimedAt"      // S, when ClaimRequest was posted
	attrCheckpointedAt = "CheckpointedAt" // S
	attrRenewedAt      = "LeaseRenewedAt" // S, last take/renew/checkpoint by the owner
	attrAcquiredAt     = "LeaseAcquiredAt"
	attrResetBy        = "LastResetBy"
	attrResetAt        = "LastResetAt"
	attrResetFrom      = "LastResetFrom"        // S, the checkpoint a reset replaced
	attrBehind         = "MillisBehindLatest"   // N, the owner's last GetRecords MillisBehindLatest
	attrBehindAt       = "MillisBehindLatestAt" // S, when the owner observed it
	attrTail           = "Tail"                 // L of S, a finished shard's records not handled yet (TailSegment)
	attrStopBy         = "LastStopBy"           // S, the worker whose processor stopped the shard (Abandon)
	attrStopAt         = "LastStopAt"           // S
	attrStopReason     = "LastStopReason"       // S
)

// ShardEnd is the checkpoint of a shard whose every record has been processed (the KCL's own
// value, so the KCL and its tools read it the same way).
const ShardEnd = "SHARD_END"

// timeLayout is RFC3339 in UTC with a fixed-width fraction, so strings compare like times and
// time.RFC3339Nano parses them (as the stock KCL does for LeaseTimeout). Every time written into
// a row is the writer's clock and only for display: no decision compares it with another clock.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// leaseRow is one lease table item.
type leaseRow struct {
	ShardID        string
	Owner          string
	LeaseTimeout   time.Time
	leaseTimeoutS  string // raw, for legacy rows without LeaseCounter
	Checkpoint     string
	Parent         string
	Adjacent       string
	Counter        int64
	HasCounter     bool
	OwnerSwitches  int64
	Claim          string
	ClaimedAt      time.Time // the claimer's clock: for display only
	claimedAtS     string    // raw, identifies the claim for observation and conditions
	CheckpointedAt time.Time
	RenewedAt      time.Time
	AcquiredAt     time.Time
	ResetBy        string
	ResetAt        time.Time
	ResetFrom      string
	Behind         int64 // MillisBehindLatest the owner published (HasBehind)
	HasBehind      bool
	BehindAt       time.Time
	Tail           []TailSegment
	StopBy         string
	StopAt         time.Time
	StopReason     string
}

func (r *leaseRow) finished() bool { return r.Checkpoint == ShardEnd }

// version identifies the row's lease state for expiry observation: any owner write changes it.
func (r *leaseRow) version() string {
	return fmt.Sprintf("%s|%d|%s", r.Owner, r.Counter, r.leaseTimeoutS)
}

// claimVersion identifies the row's ClaimRequest: posting it again changes ClaimedAt.
func (r *leaseRow) claimVersion() string { return r.Claim + "|" + r.claimedAtS }

func decodeRow(item map[string]types.AttributeValue) (*leaseRow, error) {
	if len(item) == 0 {
		return nil, nil
	}
	r := &leaseRow{}
	var err error
	str := func(name string) string {
		if v, ok := item[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	tm := func(name string) time.Time {
		s := str(name)
		if s == "" || err != nil {
			return time.Time{}
		}
		t, perr := parseTime(s)
		if perr != nil {
			err = fmt.Errorf("attribute %s: %w", name, perr)
		}
		return t
	}
	num := func(name string) (int64, bool) {
		v, ok := item[name].(*types.AttributeValueMemberN)
		if !ok {
			return 0, false
		}
		n, perr := strconv.ParseInt(v.Value, 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("attribute %s: %w", name, perr)
		}
		return n, true
	}
	r.ShardID = str(attrShardID)
	r.Owner = str(attrOwner)
	r.leaseTimeoutS = str(attrLeaseTimeout)
	r.LeaseTimeout = tm(attrLeaseTimeout)
	r.Checkpoint = str(attrCheckpoint)
	r.Parent = str(attrParent)
	r.Adjacent = str(attrAdjacent)
	r.Counter, r.HasCounter = num(attrCounter)
	r.OwnerSwitches, _ = num(attrOwnerSwitches)
	r.Claim = str(attrClaim)
	r.ClaimedAt = tm(attrClaimedAt)
	r.claimedAtS = str(attrClaimedAt)
	r.CheckpointedAt = tm(attrCheckpointedAt)
	r.RenewedAt = tm(attrRenewedAt)
	r.AcquiredAt = tm(attrAcquiredAt)
	r.ResetBy = str(attrResetBy)
	r.ResetAt = tm(attrResetAt)
	r.ResetFrom = str(attrResetFrom)
	r.Behind, r.HasBehind = num(attrBehind)
	r.BehindAt = tm(attrBehindAt)
	if l, ok := item[attrTail].(*types.AttributeValueMemberL); ok {
		for _, v := range l.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				r.Tail = append(r.Tail, parseSegment(sv.Value))
			}
		}
	}
	r.StopBy = str(attrStopBy)
	r.StopAt = tm(attrStopAt)
	r.StopReason = str(attrStopReason)
	if r.ShardID == "" {
		return nil, fmt.Errorf("lease row without %s", attrShardID)
	}
	if err != nil {
		return nil, fmt.Errorf("lease row %s: %w", r.ShardID, err)
	}
	return r, nil
}

func sv(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func nv(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func keyOf(shardID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrShardID: sv(shardID)}
}

// update builds an UpdateExpression with a ConditionExpression from simple parts. Values are
// bound as :v0, :v1...; attribute names as #n0, #n1... (so no reserved word can bite).
type update struct {
	sets    []string
	removes []string
	conds   []string
	values  map[string]types.AttributeValue
	names   map[string]string
	nameOf  map[string]string
}

func (u *update) bind(v types.AttributeValue) string {
	if u.values == nil {
		u.values = map[string]types.AttributeValue{}
	}
	name := fmt.Sprintf(":v%d", len(u.values))
	u.values[name] = v
	return name
}

func (u *update) n(attr string) string {
	if p, ok := u.nameOf[attr]; ok {
		return p
	}
	if u.names == nil {
		u.names, u.nameOf = map[string]string{}, map[string]string{}
	}
	p := fmt.Sprintf("#n%d", len(u.names))
	u.names[p] = attr
	u.nameOf[attr] = p
	return p
}

func (u *update) set(attr string, v types.AttributeValue) {
	u.sets = append(u.sets, u.n(attr)+" = "+u.bind(v))
}
func (u *update) remove(attr string) { u.removes = append(u.removes, u.n(attr)) }
func (u *update) notExists(attr string) {
	u.conds = append(u.conds, "attribute_not_exists("+u.n(attr)+")")
}
func (u *update) exists(attr string) { u.conds = append(u.conds, "attribute_exists("+u.n(attr)+")") }
func (u *update) condRaw(c string)   { u.conds = append(u.conds, c) }
func (u *update) condEq(attr string, v types.AttributeValue) {
	u.conds = append(u.conds, u.n(attr)+" = "+u.bind(v))
}

// condState requires the row to still be in the lease state observed in r (nil: no row).
func (u *update) condState(r *leaseRow) {
	if r == nil {
		u.notExists(attrShardID)
		return
	}
	if r.HasCounter {
		u.condEq(attrCounter, nv(r.Counter))
	} else {
		u.notExists(attrCounter)
		if r.leaseTimeoutS != "" {
			u.condEq(attrLeaseTimeout, sv(r.leaseTimeoutS))
		} else {
			u.notExists(attrLeaseTimeout)
		}
	}
	if r.Owner != "" {
		u.condEq(attrOwner, sv(r.Owner))
	} else {
		u.notExists(attrOwner)
	}
}

func (u *update) expression() string {
	expr := ""
	if len(u.sets) > 0 {
		expr = "SET " + strings.Join(u.sets, ", ")
	}
	if len(u.removes) > 0 {
		if expr != "" {
			expr += " "
		}
		expr += "REMOVE " + strings.Join(u.removes, ", ")
	}
	return expr
}

func (u *update) condition() string {
	parts := make([]string, len(u.conds))
	for i, c := range u.conds {
		parts[i] = "(" + c + ")"
	}
	return strings.Join(parts, " AND ")
}
