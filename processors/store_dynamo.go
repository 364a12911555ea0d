package processors

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoAPI is the part of the DynamoDB client the dedupe store uses (*dynamodb.Client implements it).
type DynamoAPI interface {
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// Attribute names of the dedupe table (hash key event_id, TTL attribute expires_at).
const (
	attrKey     = "event_id"
	attrHash    = "h"
	attrLastSeq = "last_seq"
	attrExpires = "expires_at"
)

// DynamoDedupe is the DynamoDB DedupeStore: one BatchGetItem (strongly consistent, so a mark written
// by the previous owner of a shard is always seen) or one BatchWriteItem per call. Safe for
// concurrent use.
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
	consistent := true
	out, err := s.api.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
		s.table: {Keys: ks, ConsistentRead: &consistent},
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
		byKey[it.Key] = it
		av := map[string]types.AttributeValue{
			attrKey:     &types.AttributeValueMemberS{Value: it.Key},
			attrExpires: &types.AttributeValueMemberN{Value: strconv.FormatInt(it.ExpiresAt.Unix(), 10)},
		}
		if _, isCursor := IsCursorKey(it.Key); !isCursor {
			av[attrHash] = &types.AttributeValueMemberS{Value: hashString(it.Hash)}
		}
		if it.LastSeq != 0 {
			av[attrLastSeq] = &types.AttributeValueMemberN{Value: strconv.FormatUint(it.LastSeq, 10)}
		}
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: av}}
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

func decodeItem(av map[string]types.AttributeValue) (Item, error) {
	var it Item
	k, ok := av[attrKey].(*types.AttributeValueMemberS)
	if !ok {
		return it, fmt.Errorf("item without a string %s", attrKey)
	}
	it.Key = k.Value
	if h, ok := av[attrHash].(*types.AttributeValueMemberS); ok {
		v, err := strconv.ParseUint(h.Value, 16, 64)
		if err != nil {
			return it, fmt.Errorf("item %q: %s %q is not a content hash", it.Key, attrHash, h.Value)
		}
		it.Hash = v
	}
	if n, ok := av[attrLastSeq].(*types.AttributeValueMemberN); ok {
		v, err := strconv.ParseUint(n.Value, 10, 64)
		if err != nil {
			return it, fmt.Errorf("item %q: %s %q is not a sequence number", it.Key, attrLastSeq, n.Value)
		}
		it.LastSeq = v
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
