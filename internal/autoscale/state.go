package autoscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kinesis-events/pipeline/checkpoint"
)

// Row keys in the lease table. Every key starts with checkpoint.ReservedPrefix ("__"), which the
// lease store and kclctl's shard views leave alone (no shard id starts so).
const (
	KeyPrefix = checkpoint.ReservedPrefix + "autoscaler#"
	LeaderKey = KeyPrefix + "leader"
	FleetKey  = KeyPrefix + "fleet"
)

// StreamKey is the row key of a stream's state.
func StreamKey(stream string) string { return KeyPrefix + "stream#" + stream }

// Attribute names. The hash key is the lease table's (the KCL's "ShardID").
const (
	attrKey     = "ShardID"
	attrState   = "AutoscalerState"   // S: JSON of History (stream rows) or Fleet (the fleet row)
	attrVersion = "AutoscalerVersion" // N: bumped by every write of the row
	attrLeader  = "Leader"            // S: the leader's ID
	attrUntil   = "LeaderUntil"       // S: RFC 3339 (UTC, milliseconds): the lease ends then
	attrSince   = "LeaderSince"       // S: when this leader took the lease
)

const timeLayout = "2006-01-02T15:04:05.000Z"

// DynamoDBAPI is the part of DynamoDB the state store uses. *dynamodb.Client implements it.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Store keeps the autoscaler's state in the lease table: a row per stream (its History), the
// fleet row (what the worker maximum was set to) and the leader lease. Writes are conditional on
// the row's version (state) or holder (lease), so two instances can never both commit a decision
// made on the same state: the one whose write fails does not act.
type Store struct {
	DDB   DynamoDBAPI
	Table string
}

// Fleet is what the autoscaler last decided for the worker fleet.
type Fleet struct {
	At time.Time `json:"at"`
	// OpenShards are the raw stream's live shards: open ones, and closed ones the fleet has not
	// finished when the autoscaler knows them (Config.Shards).
	OpenShards int `json:"live_raw_shards"`
	Workers    int `json:"workers"`
	// ECS: the scalable target's maximum before and after (0 without ECS), and its error.
	ResourceID string `json:"resource_id,omitempty"`
	MaxBefore  int    `json:"max_before,omitempty"`
	MaxAfter   int    `json:"max_after,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Leader is the leader lease.
type Leader struct {
	ID    string    `json:"id"`
	Until time.Time `json:"until"`
	Since time.Time `json:"since"`
}

// Load reads a stream's History and the row's version (0 and an empty History when there is no
// row yet).
func (s Store) Load(ctx context.Context, stream string) (History, int64, error) {
	var h History
	v, err := s.get(ctx, StreamKey(stream), &h)
	return h, v, err
}

// Save writes a stream's History if the row is still at version (0: absent). It returns false,
// and writes nothing, when someone else wrote the row first.
func (s Store) Save(ctx context.Context, stream string, h History, version int64) (bool, error) {
	return s.put(ctx, StreamKey(stream), h, version)
}

// LoadFleet and SaveFleet are Load and Save for the fleet row.
func (s Store) LoadFleet(ctx context.Context) (Fleet, int64, error) {
	var f Fleet
	v, err := s.get(ctx, FleetKey, &f)
	return f, v, err
}

// SaveFleet writes the fleet row if it is still at version.
func (s Store) SaveFleet(ctx context.Context, f Fleet, version int64) (bool, error) {
	return s.put(ctx, FleetKey, f, version)
}

func (s Store) get(ctx context.Context, key string, into any) (int64, error) {
	out, err := s.DDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{attrKey: &types.AttributeValueMemberS{Value: key}}})
	if err != nil {
		return 0, fmt.Errorf("read %s from %s: %w", key, s.Table, err)
	}
	if len(out.Item) == 0 {
		return 0, nil
	}
	return decodeState(out.Item, into)
}

func decodeState(item map[string]types.AttributeValue, into any) (int64, error) {
	key := str(item, attrKey)
	v, ok := item[attrVersion].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("row %s has no %s", key, attrVersion)
	}
	version, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("row %s: %s: %w", key, attrVersion, err)
	}
	if err := json.Unmarshal([]byte(str(item, attrState)), into); err != nil {
		return 0, fmt.Errorf("row %s: %s: %w", key, attrState, err)
	}
	return version, nil
}

func (s Store) put(ctx context.Context, key string, state any, version int64) (bool, error) {
	b, err := json.Marshal(state)
	if err != nil {
		return false, fmt.Errorf("row %s: %w", key, err)
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: map[string]types.AttributeValue{
		attrKey:     &types.AttributeValueMemberS{Value: key},
		attrState:   &types.AttributeValueMemberS{Value: string(b)},
		attrVersion: &types.AttributeValueMemberN{Value: strconv.FormatInt(version+1, 10)},
	}}
	if version == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#k)")
		in.ExpressionAttributeNames = map[string]string{"#k": attrKey}
	} else {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": attrVersion}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)}}
	}
	return s.conditional(ctx, key, in)
}

func (s Store) conditional(ctx context.Context, key string, in *dynamodb.PutItemInput) (bool, error) {
	_, err := s.DDB.PutItem(ctx, in)
	var cond *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &cond):
		return false, nil
	}
	return false, fmt.Errorf("write %s to %s: %w", key, s.Table, err)
}

// Acquire takes or renews the leader lease for id until now+ttl. It succeeds when there is no
// lease, id holds it, or the holder's lease ended before now; it returns the lease as it is after
// the attempt. Expiry compares the holder's written end with this instance's clock: instances
// must keep their clocks within a small part of ttl (NTP does; ttl is minutes on AWS). A leader
// whose clock runs behind is still fenced from acting twice: state writes are conditional.
func (s Store) Acquire(ctx context.Context, id string, now time.Time, ttl time.Duration) (bool, Leader, error) {
	out, err := s.DDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{attrKey: &types.AttributeValueMemberS{Value: LeaderKey}}})
	if err != nil {
		return false, Leader{}, fmt.Errorf("read the leader lease from %s: %w", s.Table, err)
	}
	cur := decodeLeader(out.Item)
	if len(out.Item) > 0 && cur.ID != id && !cur.Until.Before(now) {
		return false, cur, nil
	}
	next := Leader{ID: id, Until: now.Add(ttl), Since: now}
	if cur.ID == id && !cur.Since.IsZero() {
		next.Since = cur.Since
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: leaderItem(next)}
	if len(out.Item) == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#k)")
		in.ExpressionAttributeNames = map[string]string{"#k": attrKey}
	} else {
		in.ConditionExpression = aws.String("#l = :l AND #u = :u")
		in.ExpressionAttributeNames = map[string]string{"#l": attrLeader, "#u": attrUntil}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{
			":l": &types.AttributeValueMemberS{Value: str(out.Item, attrLeader)}, ":u": &types.AttributeValueMemberS{Value: str(out.Item, attrUntil)}}
	}
	ok, err := s.conditional(ctx, LeaderKey, in)
	if err != nil || !ok {
		return false, cur, err
	}
	return true, next, nil
}

// Release ends id's leader lease now (a no-op when id does not hold it), so another instance can
// take over at once.
func (s Store) Release(ctx context.Context, id string, now time.Time) error {
	ended := Leader{ID: id, Until: now.Add(-time.Millisecond), Since: now}
	in := &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: leaderItem(ended),
		ConditionExpression:       aws.String("#l = :l"),
		ExpressionAttributeNames:  map[string]string{"#l": attrLeader},
		ExpressionAttributeValues: map[string]types.AttributeValue{":l": &types.AttributeValueMemberS{Value: id}}}
	_, err := s.conditional(ctx, LeaderKey, in)
	return err
}

func leaderItem(l Leader) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrKey:    &types.AttributeValueMemberS{Value: LeaderKey},
		attrLeader: &types.AttributeValueMemberS{Value: l.ID},
		attrUntil:  &types.AttributeValueMemberS{Value: l.Until.UTC().Format(timeLayout)},
		attrSince:  &types.AttributeValueMemberS{Value: l.Since.UTC().Format(timeLayout)},
	}
}

func decodeLeader(item map[string]types.AttributeValue) Leader {
	l := Leader{ID: str(item, attrLeader)}
	l.Until, _ = time.Parse(time.RFC3339Nano, str(item, attrUntil)) // unreadable: zero, an ended lease
	l.Since, _ = time.Parse(time.RFC3339Nano, str(item, attrSince))
	return l
}

func str(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// Status is every autoscaler row of the table.
type Status struct {
	Leader  *Leader            `json:"leader"`
	Fleet   *Fleet             `json:"fleet"`
	Streams map[string]History `json:"streams"`
}

// Read scans the table for the autoscaler's rows.
func (s Store) Read(ctx context.Context) (Status, error) {
	st := Status{Streams: map[string]History{}}
	var start map[string]types.AttributeValue
	for {
		out, err := s.DDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(s.Table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start,
			FilterExpression:          aws.String("begins_with(#k, :p)"),
			ExpressionAttributeNames:  map[string]string{"#k": attrKey},
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: KeyPrefix}}})
		if err != nil {
			return Status{}, fmt.Errorf("scan %s for autoscaler rows: %w", s.Table, err)
		}
		for _, item := range out.Items {
			key := str(item, attrKey)
			switch {
			case key == LeaderKey:
				l := decodeLeader(item)
				st.Leader = &l
			case key == FleetKey:
				var f Fleet
				if _, err := decodeState(item, &f); err != nil {
					return Status{}, err
				}
				st.Fleet = &f
			case strings.HasPrefix(key, KeyPrefix+"stream#"):
				var h History
				if _, err := decodeState(item, &h); err != nil {
					return Status{}, err
				}
				st.Streams[strings.TrimPrefix(key, KeyPrefix+"stream#")] = h
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return st, nil
		}
		start = out.LastEvaluatedKey
	}
}

// StreamNames lists the streams of st, sorted.
func (st Status) StreamNames() []string {
	out := make([]string, 0, len(st.Streams))
	for s := range st.Streams {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
