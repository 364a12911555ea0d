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
		unleased := row == nil || row.Owner == "" || !now.Before(s.observeLocked(row, now))
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
			if row == nil || row.Owner == "" || !now.Before(s.observeLocked(row, now)) {
				continue
			}
		}
		return false
	}
	return true
}
