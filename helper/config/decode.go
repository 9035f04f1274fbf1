package config

import (
	"fmt"
	"io/fs"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/edgeid/edgeid/helper/kafkaconf"
	"github.com/edgeid/edgeid/internal/hcldiag"
)

// The decoder fills the structs of file.go from the syntax tree. It reads
// HCL by hand rather than with gohcl because spiffe-helper's files are
// HCL 1: a block may be written name = { ... }, booleans may be the
// strings "true" and "false", a duration may be a bare number of seconds,
// and a file mode written 0644 is octal (see prepass.go). Values are
// constants: the file has no variables or functions.

// kind is how a key's value is read.
type kind int

const (
	kString     kind = iota
	kBool            // true/false, or HCL 1's "true"/"false"
	kInt             // a whole number
	kMode            // a file mode (prepass.go reads 0644 as octal)
	kDuration        // "30s", or a bare number of seconds
	kStringList      // ["a", "b"]
	kProperties      // { "key" = "value", ... }, kept in file order
	kObjectList      // [{ ... }, { ... }]
	kBlock           // name { ... }, or name = { ... } with the object tag
	kBlockList       // name "label" { ... }, any number
)

// key is one entry of a block's schema.
type key struct {
	name   string
	kind   kind
	object bool // a kBlock that may also be written name = { ... }
	index  int  // struct field
}

// schema is what a block struct accepts, read from its tags.
type schema struct {
	keys  map[string]key
	label int // field holding the block's label, or -1
}

var (
	typeMode       = reflect.TypeFor[fs.FileMode]()
	typeDuration   = reflect.TypeFor[time.Duration]()
	typeStrings    = reflect.TypeFor[[]string]()
	typeProperties = reflect.TypeFor[[]kafkaconf.Property]()
)

// schemaOf reads the tags of struct type t. A tag on a field of a type it
// cannot decode is a programming error, caught by every test.
func schemaOf(t reflect.Type) schema {
	s := schema{keys: map[string]key{}, label: -1}
	for i := range t.NumField() {
		tag, ok := t.Field(i).Tag.Lookup("hcl")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "label" {
			s.label = i
			continue
		}
		k := key{name: name, index: i, object: strings.HasSuffix(opts, ",object")}
		k.kind = kindOf(t.Field(i).Type, strings.HasPrefix(opts, "block"))
		s.keys[name] = k
	}
	return s
}

func kindOf(t reflect.Type, block bool) kind {
	if t.Kind() == reflect.Pointer && t.Elem().Kind() != reflect.Struct {
		t = t.Elem() // *bool, *time.Duration: set or not
	}
	switch {
	case block && t.Kind() == reflect.Pointer:
		return kBlock
	case block && t.Kind() == reflect.Slice:
		return kBlockList
	case t == typeMode:
		return kMode
	case t == typeDuration:
		return kDuration
	case t == typeStrings:
		return kStringList
	case t == typeProperties:
		return kProperties
	case t.Kind() == reflect.Slice:
		return kObjectList
	case t.Kind() == reflect.String:
		return kString
	case t.Kind() == reflect.Bool:
		return kBool
	case t.Kind() == reflect.Int64:
		return kInt
	}
	panic(fmt.Sprintf("config: no decoding for %s", t))
}

// field is one key = value, from a block body or an object expression.
type field struct {
	// name is the key as written, for messages; canonical is today's name
	// of a legacy key (see prepass.go), or "".
	name      string
	canonical string
	nameRange hcl.Range
	expr      hclsyntax.Expression
}

// decoder collects every problem of the file and its warnings.
type decoder struct {
	src []byte
	report
}

// attribute decodes f into the struct that dst points at. where names the
// block in messages; it is "" at the top level.
func (d *decoder) attribute(dst reflect.Value, sc schema, f field, where string) {
	name := f.name
	if f.canonical != "" {
		name = f.canonical
	}
	sp := dst.Interface().(interface{ spanned() *spans }).spanned()
	if sp.has(name) {
		d.errorf(f.nameRange, "key %q given twice in %s", f.name, where)
		return
	}
	k, ok := sc.keys[name]
	if !ok || k.kind == kBlockList || (k.kind == kBlock && !k.object) {
		if where == "" {
			d.errorf(f.nameRange, "unknown key %q", f.name)
		} else {
			d.errorf(f.nameRange, "unknown key %q in %s", f.name, where)
		}
		return
	}
	var v reflect.Value
	switch k.kind {
	case kBlock:
		fields, ok := d.objectFields(f)
		if !ok {
			return
		}
		v = d.body(dst.Elem().Field(k.index).Type(), f.nameRange, fields, f.name)
	case kObjectList:
		v, ok = d.objectList(dst.Elem().Field(k.index).Type(), f)
	case kProperties:
		var props []kafkaconf.Property
		props, ok = d.properties(f)
		v = reflect.ValueOf(props)
	default:
		var x any
		x, ok = d.value(f, k.kind)
		v = reflect.ValueOf(x)
	}
	if !ok {
		return
	}
	set(dst.Elem().Field(k.index), v)
	sp.set(name, f.nameRange)
}

// set stores v in the struct field fv, through a pointer if fv is one.
func set(fv, v reflect.Value) {
	if fv.Kind() == reflect.Pointer && v.Kind() != reflect.Pointer {
		p := reflect.New(fv.Type().Elem())
		p.Elem().Set(v.Convert(fv.Type().Elem()))
		fv.Set(p)
		return
	}
	fv.Set(v.Convert(fv.Type()))
}

// body decodes fields into a new block struct of pointer type t.
func (d *decoder) body(t reflect.Type, def hcl.Range, fields []field, where string) reflect.Value {
	v := reflect.New(t.Elem())
	v.Interface().(interface{ spanned() *spans }).spanned().def = def
	sc := schemaOf(t.Elem())
	for _, f := range fields {
		d.attribute(v, sc, f, where)
	}
	return v
}

// block decodes a nested block: its attributes, and the unlabelled blocks
// its schema declares (kafka_gateway's encrypt); any other block inside
// it is an error.
func (d *decoder) block(t reflect.Type, b *hclsyntax.Block, where string) reflect.Value {
	v := d.body(t, b.TypeRange, attributes(b.Body), where)
	sc := schemaOf(t.Elem())
	sp := v.Interface().(interface{ spanned() *spans }).spanned()
	for _, nested := range b.Body.Blocks {
		k, ok := sc.keys[nested.Type]
		switch {
		case !ok || k.kind != kBlock:
			d.errorf(nested.TypeRange, "unknown block %q in %s", nested.Type, b.Type)
		case len(nested.Labels) != 0:
			d.errorf(nested.LabelRanges[0], "block %q takes no label", nested.Type)
		case sp.has(nested.Type):
			d.errorf(nested.TypeRange, "block %q given twice in %s", nested.Type, where)
		default:
			fv := v.Elem().Field(k.index)
			fv.Set(d.block(fv.Type(), nested, where+": "+nested.Type))
			sp.set(nested.Type, nested.TypeRange)
		}
	}
	return v
}

// attributes lists a body's attributes in file order.
func attributes(body *hclsyntax.Body) []field {
	out := make([]field, 0, len(body.Attributes))
	for name, attr := range body.Attributes {
		out = append(out, field{name: name, nameRange: attr.NameRange, expr: attr.Expr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].nameRange.Start.Byte < out[j].nameRange.Start.Byte })
	return out
}

// objectFields lists the items of name = { ... }, the HCL 1 spelling of a
// block.
func (d *decoder) objectFields(f field) ([]field, bool) {
	obj, ok := f.expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		d.errorf(f.expr.Range(), "%q must be a block or an object { ... }", f.name)
		return nil, false
	}
	out := make([]field, 0, len(obj.Items))
	for _, item := range obj.Items {
		name := hcl.ExprAsKeyword(item.KeyExpr)
		if name == "" {
			v, diags := item.KeyExpr.Value(nil)
			if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
				d.errorf(item.KeyExpr.Range(), "invalid key in %q", f.name)
				continue
			}
			name = v.AsString()
		}
		out = append(out, field{name: name, nameRange: item.KeyExpr.Range(), expr: item.ValueExpr})
	}
	return out, true
}

// objectList decodes [{ ... }, ...] into a slice of t's element type.
// jwt_svids is the only list of objects.
func (d *decoder) objectList(t reflect.Type, f field) (reflect.Value, bool) {
	tuple, ok := f.expr.(*hclsyntax.TupleConsExpr)
	if !ok {
		d.errorf(f.expr.Range(), "%q must be a list of objects [{ jwt_audience = ..., jwt_svid_file_name = ... }]", f.name)
		return reflect.Value{}, false
	}
	out := reflect.MakeSlice(t, 0, len(tuple.Exprs))
	for i, item := range tuple.Exprs {
		where := fmt.Sprintf("%s[%d]", f.name, i)
		fields, ok := d.objectFields(field{name: where, expr: item})
		if !ok {
			continue
		}
		out = reflect.Append(out, d.body(t.Elem(), item.Range(), fields, where))
	}
	return out, true
}

// properties decodes a map of extra client properties, in file order.
func (d *decoder) properties(f field) ([]kafkaconf.Property, bool) {
	fields, ok := d.objectFields(f)
	if !ok {
		return nil, false
	}
	out := make([]kafkaconf.Property, 0, len(fields))
	for _, sub := range fields {
		v, ok := d.value(sub, kString)
		if !ok {
			continue
		}
		out = append(out, kafkaconf.Property{Key: sub.name, Value: v.(string)})
	}
	return out, true
}

// value evaluates a literal of a scalar or list kind.
func (d *decoder) value(f field, k kind) (any, bool) {
	v, diags := f.expr.Value(nil)
	if diags.HasErrors() {
		d.errorf(f.expr.Range(), "key %q: %s", f.name, hcldiag.Join(diags))
		return nil, false
	}
	if v.IsNull() || !v.IsKnown() {
		d.errorf(f.expr.Range(), "key %q has no value", f.name)
		return nil, false
	}
	switch k {
	case kString:
		if v.Type() == cty.String {
			return v.AsString(), true
		}
		d.errorf(f.expr.Range(), "key %q must be a string", f.name)
	case kBool:
		return d.boolean(f, v)
	case kInt:
		if n, ok := integer(v); ok {
			return n, true
		}
		d.errorf(f.expr.Range(), "key %q must be a whole number", f.name)
	case kMode:
		return d.mode(f, v)
	case kDuration:
		return d.duration(f, v)
	case kStringList:
		return d.stringList(f, v)
	}
	return nil, false
}

func (d *decoder) boolean(f field, v cty.Value) (any, bool) {
	switch v.Type() {
	case cty.Bool:
		return v.True(), true
	case cty.String:
		// HCL 1 accepted "true"/"false" strings for booleans.
		if b, err := strconv.ParseBool(v.AsString()); err == nil {
			return b, true
		}
	}
	d.errorf(f.expr.Range(), "key %q must be true or false", f.name)
	return nil, false
}

func (d *decoder) duration(f field, v cty.Value) (any, bool) {
	switch v.Type() {
	case cty.String:
		dur, err := time.ParseDuration(v.AsString())
		if err == nil && dur >= 0 {
			return dur, true
		}
		d.errorf(f.expr.Range(), "key %q: %q is not a duration such as \"30s\"", f.name, v.AsString())
		return nil, false
	case cty.Number:
		// A bare number is seconds.
		if n, ok := integer(v); ok && n >= 0 {
			return time.Duration(n) * time.Second, true
		}
	}
	d.errorf(f.expr.Range(), "key %q must be a duration such as \"30s\"", f.name)
	return nil, false
}

func (d *decoder) stringList(f field, v cty.Value) (any, bool) {
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		d.errorf(f.expr.Range(), "key %q must be a list of strings", f.name)
		return nil, false
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() || ev.Type() != cty.String {
			d.errorf(f.expr.Range(), "key %q must be a list of strings", f.name)
			return nil, false
		}
		out = append(out, ev.AsString())
	}
	return out, true
}

// mode reads a file mode: a number (prepass.go has already turned one
// written with a leading 0 into its octal value) or a string, always
// octal ("0644" or "644").
func (d *decoder) mode(f field, v cty.Value) (any, bool) {
	var n int64
	switch v.Type() {
	case cty.String:
		m, err := strconv.ParseUint(v.AsString(), 8, 32)
		if err != nil {
			d.errorf(f.expr.Range(), "key %q: %q is not an octal file mode", f.name, v.AsString())
			return nil, false
		}
		n = int64(m)
	case cty.Number:
		i, ok := integer(v)
		if !ok {
			d.errorf(f.expr.Range(), "key %q must be a file mode such as 0644", f.name)
			return nil, false
		}
		n = i
	default:
		d.errorf(f.expr.Range(), "key %q must be a file mode such as 0644", f.name)
		return nil, false
	}
	if n < 0 || n > 0o777 {
		d.errorf(f.expr.Range(), "key %q: mode %#o is outside 0000-0777", f.name, n)
		return nil, false
	}
	return fs.FileMode(n), true
}

func integer(v cty.Value) (int64, bool) {
	if v.Type() != cty.Number {
		return 0, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, false
	}
	n, acc := bf.Int64()
	return n, acc == big.Exact
}
