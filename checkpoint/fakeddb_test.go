package checkpoint

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// fakeDDB is an in-memory DynamoDB for the subset of the API and of the expression language the
// store uses. The contract suite runs against it and against the real emulators, so it cannot
// drift from them unnoticed.
type fakeDDB struct {
	mu     sync.Mutex
	tables map[string]map[string]map[string]types.AttributeValue // table -> hash key -> item
	keys   map[string]string                                     // table -> hash key attribute
}

func newFakeDDB() *fakeDDB {
	return &fakeDDB{tables: map[string]map[string]map[string]types.AttributeValue{}, keys: map[string]string{}}
}

var _ DynamoDBAPI = (*fakeDDB)(nil)

func notFound(table string) error {
	return &types.ResourceNotFoundException{Message: aws.String("Requested resource not found: Table: " + table + " not found")}
}

func (f *fakeDDB) table(name *string) (map[string]map[string]types.AttributeValue, string, error) {
	t, ok := f.tables[aws.ToString(name)]
	if !ok {
		return nil, "", notFound(aws.ToString(name))
	}
	return t, f.keys[aws.ToString(name)], nil
}

func hashOf(key map[string]types.AttributeValue, keyAttr string) (string, error) {
	v, ok := key[keyAttr].(*types.AttributeValueMemberS)
	if !ok || len(key) != 1 {
		return "", fmt.Errorf("ValidationException: key must be exactly {%s: S}", keyAttr)
	}
	return v.Value, nil
}

func copyItem(it map[string]types.AttributeValue) map[string]types.AttributeValue {
	if it == nil {
		return nil
	}
	out := make(map[string]types.AttributeValue, len(it))
	for k, v := range it {
		out[k] = v
	}
	return out
}

func (f *fakeDDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, k, err := f.table(in.TableName)
	if err != nil {
		return nil, err
	}
	h, err := hashOf(in.Key, k)
	if err != nil {
		return nil, err
	}
	return &dynamodb.GetItemOutput{Item: copyItem(t[h])}, nil
}

func (f *fakeDDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, k, err := f.table(in.TableName)
	if err != nil {
		return nil, err
	}
	h, err := hashOf(in.Key, k)
	if err != nil {
		return nil, err
	}
	ev := &exprEnv{names: in.ExpressionAttributeNames, values: in.ExpressionAttributeValues}
	cur := t[h]
	if c := aws.ToString(in.ConditionExpression); c != "" {
		ok, err := ev.evalCondition(c, cur)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
		}
	}
	next := copyItem(cur)
	if next == nil {
		next = map[string]types.AttributeValue{k: &types.AttributeValueMemberS{Value: h}}
	}
	if err := ev.applyUpdate(aws.ToString(in.UpdateExpression), next, k); err != nil {
		return nil, err
	}
	t[h] = next
	out := &dynamodb.UpdateItemOutput{}
	if in.ReturnValues == types.ReturnValueAllNew {
		out.Attributes = copyItem(next)
	}
	return out, nil
}

func (f *fakeDDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, k, err := f.table(in.TableName)
	if err != nil {
		return nil, err
	}
	h, err := hashOf(in.Key, k)
	if err != nil {
		return nil, err
	}
	if c := aws.ToString(in.ConditionExpression); c != "" {
		ev := &exprEnv{names: in.ExpressionAttributeNames, values: in.ExpressionAttributeValues}
		ok, err := ev.evalCondition(c, t[h])
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
		}
	}
	delete(t, h)
	return &dynamodb.DeleteItemOutput{}, nil
}

// fakeScanPage is small so the store's pagination is exercised.
const fakeScanPage = 3

func (f *fakeDDB) Scan(ctx context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, k, err := f.table(in.TableName)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(t))
	for id := range t {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	start := ""
	if in.ExclusiveStartKey != nil {
		if start, err = hashOf(in.ExclusiveStartKey, k); err != nil {
			return nil, err
		}
	}
	out := &dynamodb.ScanOutput{}
	for _, id := range ids {
		if start != "" && id <= start {
			continue
		}
		if len(out.Items) == fakeScanPage {
			out.LastEvaluatedKey = map[string]types.AttributeValue{k: &types.AttributeValueMemberS{Value: out.Items[len(out.Items)-1][k].(*types.AttributeValueMemberS).Value}}
			break
		}
		out.Items = append(out.Items, copyItem(t[id]))
	}
	out.Count = int32(len(out.Items))
	return out, nil
}

func (f *fakeDDB) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	name := aws.ToString(in.TableName)
	if _, ok := f.tables[name]; ok {
		return nil, &types.ResourceInUseException{Message: aws.String("Table already exists: " + name)}
	}
	if len(in.KeySchema) != 1 || in.KeySchema[0].KeyType != types.KeyTypeHash {
		return nil, fmt.Errorf("ValidationException: fake supports a single hash key")
	}
	f.tables[name] = map[string]map[string]types.AttributeValue{}
	f.keys[name] = aws.ToString(in.KeySchema[0].AttributeName)
	return &dynamodb.CreateTableOutput{TableDescription: &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusActive}}, nil
}

func (f *fakeDDB) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tables[aws.ToString(in.TableName)]; !ok {
		return nil, notFound(aws.ToString(in.TableName))
	}
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableName: in.TableName, TableStatus: types.TableStatusActive}}, nil
}

func (f *fakeDDB) DeleteTable(ctx context.Context, in *dynamodb.DeleteTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteTableOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tables[aws.ToString(in.TableName)]; !ok {
		return nil, notFound(aws.ToString(in.TableName))
	}
	delete(f.tables, aws.ToString(in.TableName))
	return &dynamodb.DeleteTableOutput{}, nil
}

// ---- expressions ----

type exprEnv struct {
	names  map[string]string
	values map[string]types.AttributeValue
	toks   []string
	pos    int
}

func tokenize(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case strings.ContainsRune("(),", c):
			toks = append(toks, string(c))
			i++
		case c == '=':
			toks = append(toks, "=")
			i++
		case c == '<' || c == '>':
			if i+1 < len(s) && (s[i+1] == '=' || (c == '<' && s[i+1] == '>')) {
				toks = append(toks, s[i:i+2])
				i += 2
			} else {
				toks = append(toks, string(c))
				i++
			}
		default:
			j := i
			for j < len(s) && !unicode.IsSpace(rune(s[j])) && !strings.ContainsRune("(),=<>", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

func (e *exprEnv) peek() string {
	if e.pos < len(e.toks) {
		return e.toks[e.pos]
	}
	return ""
}

func (e *exprEnv) next() string { t := e.peek(); e.pos++; return t }

func (e *exprEnv) expect(t string) error {
	if got := e.next(); got != t {
		return fmt.Errorf("ValidationException: expected %q, got %q", t, got)
	}
	return nil
}

func (e *exprEnv) name(tok string) (string, error) {
	if strings.HasPrefix(tok, "#") {
		n, ok := e.names[tok]
		if !ok {
			return "", fmt.Errorf("ValidationException: undefined name %s", tok)
		}
		return n, nil
	}
	if tok == "" || strings.HasPrefix(tok, ":") {
		return "", fmt.Errorf("ValidationException: expected attribute name, got %q", tok)
	}
	return tok, nil
}

func (e *exprEnv) operand(tok string, item map[string]types.AttributeValue) (types.AttributeValue, error) {
	if strings.HasPrefix(tok, ":") {
		v, ok := e.values[tok]
		if !ok {
			return nil, fmt.Errorf("ValidationException: undefined value %s", tok)
		}
		return v, nil
	}
	n, err := e.name(tok)
	if err != nil {
		return nil, err
	}
	return item[n], nil // nil when missing
}

func (e *exprEnv) evalCondition(expr string, item map[string]types.AttributeValue) (bool, error) {
	e.toks, e.pos = tokenize(expr), 0
	v, err := e.or(item)
	if err != nil {
		return false, err
	}
	if e.pos != len(e.toks) {
		return false, fmt.Errorf("ValidationException: trailing tokens in %q", expr)
	}
	return v, nil
}

func (e *exprEnv) or(item map[string]types.AttributeValue) (bool, error) {
	v, err := e.and(item)
	for err == nil && strings.EqualFold(e.peek(), "OR") {
		e.next()
		var w bool
		w, err = e.and(item)
		v = v || w
	}
	return v, err
}

func (e *exprEnv) and(item map[string]types.AttributeValue) (bool, error) {
	v, err := e.unary(item)
	for err == nil && strings.EqualFold(e.peek(), "AND") {
		e.next()
		var w bool
		w, err = e.unary(item)
		v = v && w
	}
	return v, err
}

func (e *exprEnv) unary(item map[string]types.AttributeValue) (bool, error) {
	switch t := e.peek(); {
	case strings.EqualFold(t, "NOT"):
		e.next()
		v, err := e.unary(item)
		return !v, err
	case t == "(":
		e.next()
		v, err := e.or(item)
		if err != nil {
			return false, err
		}
		return v, e.expect(")")
	case t == "attribute_exists" || t == "attribute_not_exists":
		e.next()
		if err := e.expect("("); err != nil {
			return false, err
		}
		n, err := e.name(e.next())
		if err != nil {
			return false, err
		}
		if err := e.expect(")"); err != nil {
			return false, err
		}
		_, ok := item[n]
		return ok == (t == "attribute_exists"), nil
	}
	l, err := e.operand(e.next(), item)
	if err != nil {
		return false, err
	}
	op := e.next()
	r, err := e.operand(e.next(), item)
	if err != nil {
		return false, err
	}
	return compare(l, op, r)
}

// compare follows DynamoDB: a comparison with a missing attribute or across types is false
// (except <>, which is true across types).
func compare(l types.AttributeValue, op string, r types.AttributeValue) (bool, error) {
	if l == nil || r == nil {
		return false, nil
	}
	var c int
	switch lv := l.(type) {
	case *types.AttributeValueMemberS:
		rv, ok := r.(*types.AttributeValueMemberS)
		if !ok {
			return op == "<>", nil
		}
		c = strings.Compare(lv.Value, rv.Value)
	case *types.AttributeValueMemberN:
		rv, ok := r.(*types.AttributeValueMemberN)
		if !ok {
			return op == "<>", nil
		}
		a, okA := new(big.Float).SetString(lv.Value)
		b, okB := new(big.Float).SetString(rv.Value)
		if !okA || !okB {
			return false, fmt.Errorf("ValidationException: bad number")
		}
		c = a.Cmp(b)
	default:
		return false, fmt.Errorf("ValidationException: fake compares only S and N")
	}
	switch op {
	case "=":
		return c == 0, nil
	case "<>":
		return c != 0, nil
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	case ">=":
		return c >= 0, nil
	}
	return false, fmt.Errorf("ValidationException: unknown operator %q", op)
}

func (e *exprEnv) applyUpdate(expr string, item map[string]types.AttributeValue, keyAttr string) error {
	e.toks, e.pos = tokenize(expr), 0
	for e.pos < len(e.toks) {
		switch clause := strings.ToUpper(e.next()); clause {
		case "SET":
			for {
				n, err := e.name(e.next())
				if err != nil {
					return err
				}
				if err := e.expect("="); err != nil {
					return err
				}
				v, err := e.operand(e.next(), item)
				if err != nil {
					return err
				}
				if n == keyAttr {
					return fmt.Errorf("ValidationException: cannot update key attribute")
				}
				if v == nil {
					return fmt.Errorf("ValidationException: SET from a missing attribute")
				}
				item[n] = v
				if e.peek() != "," {
					break
				}
				e.next()
			}
		case "REMOVE":
			for {
				n, err := e.name(e.next())
				if err != nil {
					return err
				}
				delete(item, n)
				if e.peek() != "," {
					break
				}
				e.next()
			}
		default:
			return fmt.Errorf("ValidationException: fake supports SET and REMOVE, got %q", clause)
		}
	}
	return nil
}
