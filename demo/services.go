package demo

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The demo's catalog service exists twice: the production version and the
// candidate on the "new cluster". They agree on the data and differ the way
// real migrations do:
//
//   - generatedAt is the time of serving, so it differs on every response;
//   - the candidate returns genres and list results in another order;
//   - the candidate renamed "rating" to "score" on purpose;
//   - the candidate has a real bug: for titles whose id is a multiple of 29
//     (about 3% of the catalogue) it reports the year off by one;
//   - for titles whose id is a multiple of 31 the candidate is served by a
//     newer catalog dependency (lineage v8813 instead of v8812), so those
//     pairs are lineage mismatches, not verdicts on the candidate.

const catalogSize = 600

type title struct {
	ID     int      `json:"id"`
	Title  string   `json:"title"`
	Year   int      `json:"year"`
	Genres []string `json:"genres"`
	Rating float64  `json:"rating"`
}

var genres = []string{"drama", "comedy", "thriller", "documentary", "animation", "crime", "sci-fi", "romance"}

var words = []string{"Long", "Night", "River", "Silent", "Empire", "Garden", "Last", "Winter", "Signal", "Harbor",
	"Glass", "Paper", "Iron", "Summer", "Shadow", "Orchard", "North", "Echo", "Velvet", "Storm"}

// catalog builds the same deterministic catalogue for both versions.
func catalog() []title {
	r := rand.New(rand.NewPCG(7, 11))
	out := make([]title, catalogSize+1)
	for id := 1; id <= catalogSize; id++ {
		n := 2 + r.IntN(3)
		g := make([]string, 0, n)
		for _, i := range r.Perm(len(genres))[:n] {
			g = append(g, genres[i])
		}
		out[id] = title{
			ID:     id,
			Title:  "The " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))],
			Year:   1970 + r.IntN(56),
			Genres: g,
			Rating: float64(10+r.IntN(41)) / 10,
		}
	}
	return out
}

// buggyTitle reports whether the candidate gets this title wrong.
func buggyTitle(id int) bool { return id%29 == 0 }

// newerLineage reports whether the candidate serves this title from a newer
// catalog dependency.
func newerLineage(id int) bool { return id%31 == 0 }

// newService returns the catalog service; candidate selects the new version.
func newService(candidate bool, now func() time.Time) http.Handler {
	titles := catalog()
	lineage := "v8812"
	mux := http.NewServeMux()

	render := func(t title) map[string]any {
		g := slices.Clone(t.Genres)
		m := map[string]any{"id": t.ID, "title": t.Title, "year": t.Year, "genres": g, "generatedAt": now().UTC().Format(time.RFC3339Nano)}
		if candidate {
			slices.Reverse(g)
			m["score"] = t.Rating
			if buggyTitle(t.ID) {
				m["year"] = t.Year + 1
			}
		} else {
			m["rating"] = t.Rating
		}
		return m
	}
	write := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		if w.Header().Get("X-Lineage-Catalog-Service") == "" {
			w.Header().Set("X-Lineage-Catalog-Service", lineage)
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	lookup := func(s string) (title, bool) {
		id, err := strconv.Atoi(s)
		if err != nil || id < 1 || id > catalogSize {
			return title{}, false
		}
		return titles[id], true
	}

	mux.HandleFunc("GET /v1/titles/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, ok := lookup(r.PathValue("id"))
		if !ok {
			write(w, http.StatusNotFound, map[string]any{"error": "title not found", "id": r.PathValue("id")})
			return
		}
		if candidate && newerLineage(t.ID) {
			w.Header().Set("X-Lineage-Catalog-Service", "v8813")
		}
		write(w, http.StatusOK, render(t))
	})
	mux.HandleFunc("GET /v1/titles", func(w http.ResponseWriter, r *http.Request) {
		genre := r.URL.Query().Get("genre")
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 || limit > 50 {
			limit = 10
		}
		var items []map[string]any
		for _, t := range titles[1:] {
			if genre == "" || slices.Contains(t.Genres, genre) {
				items = append(items, map[string]any{"id": t.ID, "title": t.Title})
			}
			if len(items) == limit {
				break
			}
		}
		if candidate {
			slices.Reverse(items)
		}
		write(w, http.StatusOK, map[string]any{"genre": genre, "items": items, "generatedAt": now().UTC().Format(time.RFC3339Nano)})
	})
	mux.HandleFunc("GET /v1/users/{id}/recommendations", func(w http.ResponseWriter, r *http.Request) {
		user, err := strconv.Atoi(strings.TrimPrefix(r.PathValue("id"), "u-"))
		if err != nil {
			write(w, http.StatusBadRequest, map[string]any{"error": "bad user id"})
			return
		}
		var recs []int
		for i := range 5 {
			recs = append(recs, 1+(user*7+i*13)%catalogSize)
		}
		if candidate {
			slices.Sort(recs)
		}
		write(w, http.StatusOK, map[string]any{"user": r.PathValue("id"), "titles": recs, "generatedAt": now().UTC().Format(time.RFC3339Nano)})
	})
	mux.HandleFunc("POST /v1/users/{id}/ratings", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusCreated, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return mux
}
