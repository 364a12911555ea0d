package processors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoAPI is the part of the DynamoDB client the dedupe store uses (*dynamodb.Client implements it).
type DynamoAPI interface {
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Attribute names of the dedupe table (hash key event_id, TTL attribute expires_at).
const (
	attrKey     = "event_id"
	attrData    = "d"
	attrVersion = "v"
	attrExpires = "expires_at"
)

// DynamoDedupe is the DynamoDB DedupeStore: one BatchGetItem (strongly consistent, so state written
// by the previous owner of a shard is always seen), BatchWriteItem or conditional PutItem per call.
// Safe for concurrent use.
type DynamoDedupe struct {
	api   DynamoAPI
	table string
}

// NewDynamoDedupe returns a store on table (hash key event_id, string; TTL attribute expires_at).
func NewDynamoDedupe(api DynamoAPI, table string) *DynamoDedupe {
	return &DynamoDedupe{api: api, table: table}
}

// Get implements DedupeStore.
func (s *DynamoDedupe) Get(ctx context.Context, keys []string) ([]Item, []string, error) {
	if len(keys) > MaxGetKeys {
		return nil, nil, fmt.Errorf("dedupe get: %d keys, at most %d", len(keys), MaxGetKeys)
	}
	ks := make([]map[string]types.AttributeValue, len(keys))
	for i, k := range keys {
		ks[i] = map[string]types.AttributeValue{attrKey: &types.AttributeValueMemberS{Value: k}}
	}
	out, err := s.api.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
		s.table: {Keys: ks, ConsistentRead: aws.Bool(true)},
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("dedupe get from %s: %w", s.table, err)
	}
	found := make([]Item, 0, len(out.Responses[s.table]))
	for _, av := range out.Responses[s.table] {
		it, err := decodeItem(av)
		if err != nil {
			return nil, nil, fmt.Errorf("dedupe get from %s: %w", s.table, err)
		}
		found = append(found, it)
	}
	var unprocessed []string
	for _, av := range out.UnprocessedKeys[s.table].Keys {
		if k, ok := av[attrKey].(*types.AttributeValueMemberS); ok {
			unprocessed = append(unprocessed, k.Value)
		}
	}
	return found, unprocessed, nil
}

// Put implements DedupeStore.
func (s *DynamoDedupe) Put(ctx context.Context, items []Item) ([]Item, error) {
	if len(items) > MaxPutItems {
		return nil, fmt.Errorf("dedupe put: %d items, at most %d", len(items), MaxPutItems)
	}
	byKey := make(map[string]Item, len(items))
	reqs := make([]types.WriteRequest, len(items))
	for i, it := range items {
		it.Version = 0
		byKey[it.Key] = it
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: encodeItem(it)}}
	}
	out, err := s.api.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{s.table: reqs}})
	if err != nil {
		return nil, fmt.Errorf("dedupe put to %s: %w", s.table, err)
	}
	var unprocessed []Item
	for _, wr := range out.UnprocessedItems[s.table] {
		if wr.PutRequest == nil {
			continue
		}
		if k, ok := wr.PutRequest.Item[attrKey].(*types.AttributeValueMemberS); ok {
			if it, ok := byKey[k.Value]; ok {
				unprocessed = append(unprocessed, it)
			}
		}
	}
	return unprocessed, nil
}

// Swap implements DedupeStore with a PutItem conditional on the stored version.
func (s *DynamoDedupe) Swap(ctx context.Context, it Item, prev uint64) (bool, error) {
	it.Version = prev + 1
	in := &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: encodeItem(it)}
	if prev == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#k)")
		in.ExpressionAttributeNames = map[string]string{"#k": attrKey}
	} else {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": attrVersion}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatUint(prev, 10)}}
	}
	_, err := s.api.PutItem(ctx, in)
	var cond *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &cond):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("dedupe swap in %s: %w", s.table, err)
	}
	return true, nil
}

func encodeItem(it Item) map[string]types.AttributeValue {
	av := map[string]types.AttributeValue{
		attrKey:     &types.AttributeValueMemberS{Value: it.Key},
		attrExpires: &types.AttributeValueMemberN{Value: strconv.FormatInt(it.ExpiresAt.Unix(), 10)},
	}
	if len(it.Data) > 0 {
		av[attrData] = &types.AttributeValueMemberB{Value: it.Data}
	}
	if it.Version > 0 {
		av[attrVersion] = &types.AttributeValueMemberN{Value: strconv.FormatUint(it.Version, 10)}
	}
	return av
}

func decodeItem(av map[string]types.AttributeValue) (Item, error) {
	var it Item
	k, ok := av[attrKey].(*types.AttributeValueMemberS)
	if !ok {
		return it, fmt.Errorf("item without a string %s", attrKey)
	}
	it.Key = k.Value
	if d, ok := av[attrData].(*types.AttributeValueMemberB); ok {
		it.Data = d.Value
	}
	if n, ok := av[attrVersion].(*types.AttributeValueMemberN); ok {
		v, err := strconv.ParseUint(n.Value, 10, 64)
		if err != nil {
			return it, fmt.Errorf("item %q: %s %q is not a version", it.Key, attrVersion, n.Value)
		}
		it.Version = v
	}
	if n, ok := av[attrExpires].(*types.AttributeValueMemberN); ok {
		v, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			return it, fmt.Errorf("item %q: %s %q is not a number", it.Key, attrExpires, n.Value)
		}
		it.ExpiresAt = time.Unix(v, 0)
	}
	return it, nil
}
