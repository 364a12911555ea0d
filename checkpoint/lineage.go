package checkpoint

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/zap"
)

// shardMeta is one shard of the stream as ListShards reports it.
type shardMeta struct {
	ID       string
	Parent   string
	Adjacent string
	Closed   bool // has an EndingSequenceNumber
	StartSeq string
	EndSeq   string
	HashLo   string // hash key range, inclusive, decimal
	HashHi   string
}

func (m shardMeta) parents() []string {
	var ps []string
	if m.Parent != "" {
		ps = append(ps, m.Parent)
	}
	if m.Adjacent != "" && m.Adjacent != m.Parent {
		ps = append(ps, m.Adjacent)
	}
	return ps
}

// listShards returns every shard of the stream (open and closed, within retention), following
// pagination. Each page is a separate call bounded by callTimeout.
func listShards(ctx context.Context, kin KinesisAPI, stream string, callTimeout time.Duration) (map[string]shardMeta, error) {
	out := map[string]shardMeta{}
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			return nil, fmt.Errorf("list shards of %s: too many pages", stream)
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		page, err := kin.ListShards(cctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range page.Shards {
			m := shardMeta{
				ID:       aws.ToString(s.ShardId),
				Parent:   aws.ToString(s.ParentShardId),
				Adjacent: aws.ToString(s.AdjacentParentShardId),
			}
			if r := s.HashKeyRange; r != nil {
				m.HashLo, m.HashHi = aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey)
			}
			if r := s.SequenceNumberRange; r != nil {
				m.StartSeq = aws.ToString(r.StartingSequenceNumber)
				m.EndSeq = aws.ToString(r.EndingSequenceNumber)
				m.Closed = r.EndingSequenceNumber != nil
			}
			out[m.ID] = m
		}
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

func (s *Store) refreshLineage(ctx context.Context) error {
	m, err := listShards(ctx, s.kin, s.cfg.Stream, s.cfg.CallTimeout)
	s.noteCall("ListShards", err)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lineage = m
	s.lineageAt = s.now()
	s.mu.Unlock()
	return nil
}

// lineageOf returns the shard's lineage, listing the stream again when the id is unknown (at most
// once per CallTimeout, so a bogus id cannot hammer ListShards).
func (s *Store) lineageOf(ctx context.Context, id string) (shardMeta, bool, error) {
	s.mu.Lock()
	m, ok := s.lineage[id]
	retry := s.now().Sub(s.lineageTry) >= s.cfg.CallTimeout
	if !ok && retry {
		s.lineageTry = s.now()
	}
	s.mu.Unlock()
	if ok || !retry {
		return m, ok, nil
	}
	if err := s.refreshLineage(ctx); err != nil {
		return shardMeta{}, false, fmt.Errorf("shard %s: lineage: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok = s.lineage[id]
	return m, ok, nil
}

// parentsDone is the lineage gate, read consistently at grant time: every parent has
// Checkpoint == SHARD_END, or has left the stream and nobody holds a live lease on it. It returns
// what the shard waits for ("" nothing).
func (s *Store) parentsDone(ctx context.Context, meta shardMeta) (string, error) {
	for _, p := range meta.parents() {
		row, err := s.getRow(ctx, p)
		if err != nil {
			return "", err
		}
		if row != nil && row.finished() {
			continue
		}
		s.mu.Lock()
		stale := s.now().Sub(s.lineageAt) >= s.cfg.LineageRefresh
		s.mu.Unlock()
		if stale {
			if err := s.refreshLineage(ctx); err != nil {
				s.log.Debug("lineage refresh failed; using cached lineage", zap.Error(err))
			}
		}
		now := s.now()
		s.mu.Lock()
		_, present := s.lineage[p]
		unleased := row == nil || row.Owner == "" || !now.Before(s.expiresLocked(row))
		s.mu.Unlock()
		if !present && unleased {
			if row != nil {
				s.log.Warn("parent left the stream unfinished; its data expired", zap.String("shard", meta.ID), zap.String("parent", p), zap.String("checkpoint", row.Checkpoint))
			}
			continue
		}
		at := "never leased"
		if row != nil {
			at = fmt.Sprintf("checkpoint %q", row.Checkpoint)
		}
		return fmt.Sprintf("parent %s %s", p, at), nil
	}
	return "", nil
}

// parentsDoneLocked is the same gate on the cached scan, for planning.
func (s *Store) parentsDoneLocked(meta shardMeta, now time.Time) bool {
	for _, p := range meta.parents() {
		row := s.rows[p]
		if row != nil && row.finished() {
			continue
		}
		if _, present := s.lineage[p]; !present {
			if row == nil || row.Owner == "" || !now.Before(s.expiresLocked(row)) {
				continue
			}
		}
		return false
	}
	return true
}

// Lineage is where a shard sits in the stream: its parents (the shard it was split from, or the two
// it was merged from) and its hash key range.
type Lineage struct {
	Parents []string
	// HashLo and HashHi bound the shard's hash key range, inclusive, as Kinesis reports them (the
	// decimal form of 128-bit numbers).
	HashLo, HashHi string
}

// Lineage returns shardID's lineage as ListShards reports it (listing the stream again when the
// shard is not known yet), and false when the stream has no such shard.
func (s *Store) Lineage(ctx context.Context, shardID string) (Lineage, bool, error) {
	m, ok, err := s.lineageOf(ctx, shardID)
	if err != nil || !ok {
		return Lineage{}, ok, err
	}
	return Lineage{Parents: m.parents(), HashLo: m.HashLo, HashHi: m.HashHi}, true, nil
}
