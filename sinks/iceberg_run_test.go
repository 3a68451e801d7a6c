package sinks

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// TestBindRunOneGroupWins: writers of two groups binding one run at once
// on a shared catalog: exactly one wins, the other is refused naming the
// winner, and the binding outlives every snapshot (it is a table property).
func TestBindRunOneGroupWins(t *testing.T) {
	dir := t.TempDir()
	groups := []string{"group-a", "group-b", "group-c"}
	sinks := make([]*Iceberg, len(groups))
	for i, g := range groups {
		cfg := testConfig(dir)
		cfg.Group = g
		sinks[i], _ = openTestConfig(t, cfg)
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Go(func() { errs[i] = s.BindRun(t.Context(), "run-1") })
	}
	wg.Wait()
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil && winner == "":
			winner = groups[i]
		case err == nil:
			t.Errorf("groups %s and %s both bound run-1", winner, groups[i])
		case !errors.Is(err, ErrRunOfAnotherGroup):
			t.Errorf("group %s: %v", groups[i], err)
		}
	}
	if winner == "" {
		t.Fatalf("no group bound run-1: %v", errs)
	}
	for i, err := range errs {
		if err != nil && !strings.Contains(err.Error(), `"`+winner+`"`) {
			t.Errorf("group %s refused with %q, which does not name the winner %s", groups[i], err, winner)
		}
	}
	for i, s := range sinks {
		err := s.BindRun(t.Context(), "run-1")
		if (groups[i] == winner) != (err == nil) {
			t.Errorf("binding run-1 again as %s: %v", groups[i], err)
		}
	}
	tbl, err := sinks[0].loadTable(t.Context(), "production_responses")
	if err != nil {
		t.Fatal(err)
	}
	if got := tbl.Properties()[RunGroupProp("run-1")]; got != winner {
		t.Errorf("table property %s = %q, want %q", RunGroupProp("run-1"), got, winner)
	}
}
