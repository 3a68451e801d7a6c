package normalize

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ohler55/ojg/jp"
)

// TestWalkerMatchesLocate checks that the walk used for simple paths finds
// exactly the locations jp's Locate finds.
func TestWalkerMatchesLocate(t *testing.T) {
	prod, _ := benchBodies()
	docs := []string{
		string(prod),
		`{"a":{"x":{"x":1,"y":[{"x":2},[{"x":3}]]}},"x":0,"b":[[1,2],[3]],"c":5,"d":[]}`,
		`[{"x":1},[{"x":2}],3,{"y":{"x":4}}]`,
		`{"traceId":{"traceId":{"traceId":1}}}`,
	}
	paths := []string{
		"$.x", "$.a.x.x", "$..x", "$..traceId", "$.*", "$[*]", "$.b[*][*]", "$.b[0][1]", "$.b[-1]", "$.b[-1][-1]",
		"$.b[5]", "$[0].x", "$[-1].y.x", "$..[0]", "$..*", "$.a..x", "$..y[*].x", "$..y..x", "$.cast[*].id",
		"$.offers[*].price", "$..offers[*]", "$.nope", "$.c.x", "$.d[*]", "$.d[0]", "$..x.x",
	}
	for _, d := range docs {
		for _, p := range paths {
			x := jp.MustParseString(p)
			jpPath := newJSONPath(x)
			if !jpPath.simple {
				t.Fatalf("%s should be simple", p)
			}
			doc, err := parseJSON([]byte(d))
			if err != nil {
				t.Fatal(err)
			}
			got := locationStrings(jpPath.locate(doc))
			slow := jsonPath{expr: x} // simple=false: evaluated by jp
			want := locationStrings(slow.locate(doc))
			if !slices.Equal(got, want) {
				t.Errorf("%s on %.40s…:\n walk   %q\n Locate %q", p, d, got, want)
			}
		}
	}
}

func locationStrings(locs []location) []string {
	out := make([]string, 0, len(locs))
	for _, loc := range locs {
		s := "$"
		for _, st := range loc {
			if st.isIndex {
				s += fmt.Sprintf("[%d]", st.index)
			} else {
				s += "." + st.key
			}
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestDeleteAllShiftsSafely(t *testing.T) {
	doc, _ := parseJSON([]byte(`{"a":[0,1,2,3,{"b":[5,6]}],"c":{"c":{"c":1}}}`))
	// All locations are found first, on the same document, as move does.
	var locs []location
	for _, p := range []string{"$.a[1]", "$.a[4].b[0]", "$.a[3]", "$..c"} {
		locs = append(locs, newJSONPath(jp.MustParseString(p)).locate(doc)...)
	}
	doc = deleteAll(doc, locs)
	if got, want := string(appendCanonical(nil, doc)), `{"a":[0,2,{"b":[6]}]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	doc, _ = parseJSON([]byte(`[0,1,2,3,4,5]`))
	doc = deleteAll(doc, newJSONPath(jp.MustParseString("$[1,3,4]")).locate(doc))
	if got, want := string(appendCanonical(nil, doc)), `[0,2,5]`; got != want {
		t.Errorf("union delete: got %s, want %s", got, want)
	}
}
