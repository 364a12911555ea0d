package checkpoint

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func (s *Store) noteCall(op string, err error) {
	s.m.calls.WithLabelValues(op).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil || isConditionFailed(err) {
		s.failingSince, s.failingErr = time.Time{}, nil
		return
	}
	s.m.callErrors.WithLabelValues(op).Inc()
	if op != "ListShards" {
		s.failGen++ // DynamoDB failed: every watch of a row starts over at its next read
	}
	if s.failingSince.IsZero() {
		s.failingSince = s.now()
	}
	s.failingErr = err
}

func (s *Store) getRow(ctx context.Context, id string) (*leaseRow, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	out, err := s.ddb.GetItem(cctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.cfg.Table), Key: keyOf(id), ConsistentRead: aws.Bool(true),
	})
	s.noteCall("GetItem", err)
	if err != nil {
		if isTableMissing(err) {
			s.tableLost(err)
		}
		return nil, fmt.Errorf("shard %s: read lease row: %w", id, err)
	}
	row, err := decodeRow(out.Item)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.putRowLocked(id, row)
	s.mu.Unlock()
	return row, nil
}

// putRowLocked records a row just read from the table, or returned by a write (nil: id has no
// row), in the cached view and as an observation.
func (s *Store) putRowLocked(id string, row *leaseRow) {
	if row != nil {
		s.rows[id] = row
	} else {
		delete(s.rows, id)
	}
	s.seeLocked(id, row, s.now())
}

// putScanLocked replaces the cached view with a fresh scan.
func (s *Store) putScanLocked(rows map[string]*leaseRow) {
	now := s.now()
	for id := range s.rows {
		if rows[id] == nil {
			s.seeLocked(id, nil, now)
		}
	}
	s.rows = rows
	for id, r := range rows {
		s.seeLocked(id, r, now)
	}
	s.scanAt = now
}

func (s *Store) updateItem(ctx context.Context, id string, u *update) (*dynamodb.UpdateItemOutput, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.cfg.Table),
		Key:                       keyOf(id),
		UpdateExpression:          aws.String(u.expression()),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
		ReturnValues:              types.ReturnValueAllNew,
	}
	if c := u.condition(); c != "" {
		in.ConditionExpression = aws.String(c)
	}
	out, err := s.ddb.UpdateItem(cctx, in)
	s.noteCall("UpdateItem", err)
	return out, err
}

func (s *Store) scanTable(ctx context.Context) (map[string]*leaseRow, error) {
	rows, err := scanRows(ctx, s.ddb, s.cfg.Table, s.cfg.CallTimeout)
	s.noteCall("Scan", err)
	if err != nil && isTableMissing(err) {
		s.tableLost(err)
	}
	return rows, err
}

// scanRows reads the whole lease table with consistent reads, page by page, leaving out the rows
// under ReservedPrefix.
func scanRows(ctx context.Context, ddb DynamoDBAPI, table string, callTimeout time.Duration) (map[string]*leaseRow, error) {
	rows := map[string]*leaseRow{}
	var start map[string]types.AttributeValue
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := ddb.Scan(cctx, &dynamodb.ScanInput{
			TableName: aws.String(table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start,
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", table, err)
		}
		for _, item := range out.Items {
			if k, ok := item[attrShardID].(*types.AttributeValueMemberS); ok && IsReserved(k.Value) {
				continue // not a shard: another component's row (ReservedPrefix)
			}
			r, err := decodeRow(item)
			if err != nil {
				return nil, err
			}
			rows[r.ShardID] = r
		}
		if len(out.LastEvaluatedKey) == 0 {
			return rows, nil
		}
		start = out.LastEvaluatedKey
	}
}
