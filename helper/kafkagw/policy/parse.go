package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/edgeid/edgeid/internal/hcldiag"
	"github.com/hashicorp/hcl/v2"
)

// MaxFileBytes bounds a policy file.
const MaxFileBytes = 4 << 20

// File is the HCL shape of a policy file.
type File struct {
	AllowIfNoACL      *bool       `hcl:"allow_if_no_acl,optional"`
	AllowIfNoACLRange hcl.Range   `hcl:"allow_if_no_acl,attr_range"`
	Allow             []RuleBlock `hcl:"allow,block"`
	Deny              []RuleBlock `hcl:"deny,block"`
}

// RuleBlock is one allow or deny block.
type RuleBlock struct {
	Name            string    `hcl:"name,label"`
	NameRange       hcl.Range `hcl:"name,label_range"`
	Actors          []string  `hcl:"actors"`
	ActorsRange     hcl.Range `hcl:"actors,attr_range"`
	Resources       []string  `hcl:"resources"`
	ResourcesRange  hcl.Range `hcl:"resources,attr_range"`
	Operations      []string  `hcl:"operations"`
	OperationsRange hcl.Range `hcl:"operations,attr_range"`
}

// Error is one problem in a policy file, at a place in it.
type Error = hcldiag.Problem

// Errors is every problem found in a policy file, in file order.
type Errors []Error

func (es Errors) Error() string { return hcldiag.Format("policy", es) }

// ParseFile reads and validates the policy file at path.
func ParseFile(path string) (*Set, error) {
	src, err := hcldiag.ReadFile("policy", path, MaxFileBytes)
	if err != nil {
		return nil, err
	}
	return Parse(src, path)
}

// Parse validates the policy in src; filename names it in errors.
func Parse(src []byte, filename string) (*Set, error) {
	var f File
	problems, err := hcldiag.Decode("policy", src, filename, MaxFileBytes, &f)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, Errors(problems)
	}
	v := &validator{}
	set := v.file(&f)
	if len(v.errs) > 0 {
		slices.SortStableFunc(v.errs, func(a, b Error) int { return a.Range.Start.Byte - b.Range.Start.Byte })
		return nil, v.errs
	}
	return set, nil
}

type validator struct {
	errs Errors
}

func (v *validator) errorf(r hcl.Range, format string, args ...any) {
	v.errs = append(v.errs, Error{Range: r, Msg: fmt.Sprintf(format, args...)})
}

// file validates the top level and every rule block.
func (v *validator) file(f *File) *Set {
	var rules []Rule
	names := map[string]hcl.Range{}
	add := func(blocks []RuleBlock, deny bool) {
		for i := range blocks {
			b := &blocks[i]
			if prev, ok := names[b.Name]; ok {
				v.errorf(b.NameRange, "duplicate rule name %q (first defined at %s:%d)", b.Name, prev.Filename, prev.Start.Line)
			}
			names[b.Name] = b.NameRange
			rules = append(rules, v.rule(b, deny))
		}
	}
	add(f.Allow, false)
	add(f.Deny, true)
	allow := false
	if f.AllowIfNoACL != nil {
		allow = *f.AllowIfNoACL
	}
	return NewSet(allow, rules)
}

// rule validates one allow or deny block.
func (v *validator) rule(b *RuleBlock, deny bool) Rule {
	r := Rule{Name: b.Name, Deny: deny}
	if strings.TrimSpace(b.Name) == "" {
		v.errorf(b.NameRange, "rule name is empty")
	}
	if len(b.Actors) == 0 {
		v.errorf(b.ActorsRange, "rule %q: actors is empty", b.Name)
	}
	for _, a := range b.Actors {
		p, err := ParseActor(a)
		if err != nil {
			v.errorf(b.ActorsRange, "rule %q: actors: %v", b.Name, err)
			continue
		}
		r.Actors = append(r.Actors, p)
	}
	if len(b.Resources) == 0 {
		v.errorf(b.ResourcesRange, "rule %q: resources is empty", b.Name)
	}
	for _, s := range b.Resources {
		p, err := ParseResource(s)
		if err != nil {
			v.errorf(b.ResourcesRange, "rule %q: resources: %v", b.Name, err)
			continue
		}
		r.Resources = append(r.Resources, p)
	}
	if len(b.Operations) == 0 {
		v.errorf(b.OperationsRange, "rule %q: operations is empty", b.Name)
	}
	for _, s := range b.Operations {
		op, err := ParseOperation(s)
		if err != nil {
			v.errorf(b.OperationsRange, "rule %q: operations: %v", b.Name, err)
			continue
		}
		r.Operations = append(r.Operations, op)
	}
	return r
}
