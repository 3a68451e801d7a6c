package schemas

// MatchRate is the one definition of a match rate, shared by batch compare
// (its JSON summary, report.html and the comparison_summary table's
// match_rate column) and the live comparison (/v1/status, metrics, the live
// page): matched / (matched + mismatched). Pairs excluded for lineage or
// noise, and rows with one side only, count in neither. Over 0 compared
// pairs it is undefined: nil, which is null in JSON, "n/a" in the report
// and NULL in the table, never 1 (nothing compared is not a perfect match).
func MatchRate(matched, mismatched int64) *float64 {
	n := matched + mismatched
	if n <= 0 {
		return nil
	}
	r := float64(matched) / float64(n)

	return &r
}
