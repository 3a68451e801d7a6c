package schemas_test

import (
	"testing"

	"github.com/replaykit/replay/schemas"
)

func TestSniffShape(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`{"startedDateTime":"2026-11-21T10:00:00Z","request":{"method":"GET","url":"https://a/b","headers":[]},"response":{"status":200}}`, schemas.ShapeHAREntry},
		{`{"request":{"method":"GET","url":"https://a/b","headers":[{"name":"A","value":"b"}]}}`, schemas.ShapeHAREntry},
		{`{"log":{"version":"1.2","entries":[{"request":{"url":"https://a/b"}}]}}`, schemas.ShapeHARLog},
		{"1 8a3e2f7c0000000156d8 1587059823651235000 0\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", schemas.ShapeGoReplay},
		{"2 8a3e2f7c0000000156d8 1587059823651235000\nHTTP/1.1 200 OK\r\n\r\n", schemas.ShapeGoReplay},
		{`{"request":{"method":"GET","body":"%%","body_encoding":"base64"}}`, schemas.ShapeEnvelope},
		{`{"request":{"method":"","path":"/"}}`, schemas.ShapeEnvelope},
		{`{"method":"GET","path":"/"}`, schemas.ShapeJSONWithoutRequest},
		{`[1,2,3]`, schemas.ShapeJSONWithoutRequest},
		{`{"request":[1]}`, schemas.ShapeJSONWithoutRequest},
		{`{"request": `, schemas.ShapeNotJSON},
		{`GET / HTTP/1.1`, schemas.ShapeNotJSON},
		{"", schemas.ShapeNotJSON},
		{"\xef\xbb\xbf  {\"log\":{\"entries\":[]}}", schemas.ShapeHARLog},
	} {
		if got := schemas.SniffShape([]byte(tc.raw)); got != tc.want {
			t.Errorf("SniffShape(%.60q) = %s, want %s", tc.raw, got, tc.want)
		}
	}
}

func FuzzSniffShape(f *testing.F) {
	f.Add([]byte(`{"log":{"entries":[]}}`))
	f.Add([]byte("1 ab 12\nGET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := schemas.SniffShape(raw)
		for _, s := range schemas.Shapes() {
			if got == s {
				return
			}
		}
		t.Fatalf("SniffShape returned %q, not one of Shapes()", got)
	})
}
