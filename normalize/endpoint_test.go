package normalize

import "testing"

func TestEndpoint(t *testing.T) {
	n, err := Compile(Config{Routes: []string{
		"GET /v1/titles/{id}/art/{kind}",
		"/v1/users/{user}/recommendations",
		"POST /v1/search",
		"GET /v1/titles/popular/",
		"GET /",
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path, want string
	}{
		// automatic templating
		{"POST", "/v1/users/u-326/ratings", "POST /v1/users/{id}/ratings"},
		{"GET", "/orders/ord_1042", "GET /orders/{id}"},
		{"GET", "/api-v2/items", "GET /api-v2/items"},
		{"GET", "/x/a-b", "GET /x/a-b"},
		{"GET", "/x/longprefix-12", "GET /x/longprefix-12"},
		{"GET", "/v1/titles/42", "GET /v1/titles/{id}"},
		{"get", "/v1/titles/42?lang=en&x=1", "GET /v1/titles/{id}"},
		{"GET", "/v1/titles/42/", "GET /v1/titles/{id}"},
		{"GET", "/v1/titles/", "GET /v1/titles"},
		{"GET", "/v1/titles#top", "GET /v1/titles"},
		{"GET", "/v1/lists/7/items/123456789012345678901234567890", "GET /v1/lists/{id}/items/{id}"},
		{"GET", "/v1/titles/6ba7b810-9dad-11d1-80b4-00c04fd430c8", "GET /v1/titles/{id}"},
		{"GET", "/v1/titles/6BA7B810-9DAD-11D1-80B4-00C04FD430C8/cast", "GET /v1/titles/{id}/cast"},
		{"GET", "/v1/objects/507f1f77bcf86cd799439011", "GET /v1/objects/{id}"}, // Mongo ObjectId
		{"GET", "/v1/commits/9fceb02", "GET /v1/commits/9fceb02"},               // 7 hex chars: too short
		{"GET", "/v1/commits/9fceb02d", "GET /v1/commits/{id}"},
		{"GET", "/v1/tags/deadbeef", "GET /v1/tags/deadbeef"},       // hex letters only: a word
		{"GET", "/v1/tags/facade", "GET /v1/tags/facade"},           // a word made of hex letters
		{"GET", "/v2/titles/v1", "GET /v2/titles/v1"},               // words with digits are kept
		{"GET", "/v1/titles/heat-1995", "GET /v1/titles/heat-1995"}, // slugs are kept
		{"GET", "/v1/titles/12ab", "GET /v1/titles/12ab"},           // short mixed: kept
		{"GET", "/v1/titles/42.json", "GET /v1/titles/42.json"},
		{"DELETE", "/7", "DELETE /{id}"},
		{"GET", "", "GET /"},
		{"GET", "/", "GET /"},
		{"GET", "//", "GET /"},
		{"GET", "v1/titles/42", "GET /v1/titles/{id}"},
		{"", "/v1/titles/42", "/v1/titles/{id}"},
		// configured routes win, in order
		{"GET", "/v1/titles/42/art/poster", "GET /v1/titles/{id}/art/{kind}"},
		{"HEAD", "/v1/titles/42/art/poster", "HEAD /v1/titles/{id}/art/poster"}, // method differs: automatic
		{"GET", "/v1/users/alice/recommendations", "GET /v1/users/{user}/recommendations"},
		{"PUT", "/v1/users/42/recommendations/", "PUT /v1/users/{user}/recommendations"},
		{"GET", "/v1/users/alice/recommendations/top", "GET /v1/users/alice/recommendations/top"},
		{"GET", "/v1/users//recommendations", "GET /v1/users//recommendations"}, // an empty segment is no parameter
		{"POST", "/v1/search?q=heat", "POST /v1/search"},
		{"GET", "/v1/titles/popular", "GET /v1/titles/popular"},
		{"GET", "/?x=1", "GET /"},
	}
	for _, tt := range tests {
		if got := n.Endpoint(tt.method, tt.path); got != tt.want {
			t.Errorf("Endpoint(%q, %q) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestEndpointRouteBeatsTemplating(t *testing.T) {
	// A route that names a numeric segment literally wins over {id}.
	n, err := Compile(Config{Routes: []string{"GET /v1/titles/0/preview"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Endpoint("GET", "/v1/titles/0/preview"); got != "GET /v1/titles/0/preview" {
		t.Errorf("got %q", got)
	}
	if got := n.Endpoint("GET", "/v1/titles/1/preview"); got != "GET /v1/titles/{id}/preview" {
		t.Errorf("got %q", got)
	}
}

func BenchmarkEndpoint(b *testing.B) {
	n, err := Compile(Config{Routes: []string{"/v1/users/{user}/recommendations"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n.Endpoint("GET", "/v1/titles/42/cast?lang=en")
	}
}
