package normalize

// LineageDiffers reports whether both sides of a pair carry lineage and a
// key they share has different values: the pair was served by different
// versions of a dependency, so a difference in it says nothing about the
// migration. Batch and live comparison both set such a pair aside
// (lineage_mismatch) before comparing, with this one function, so the two
// cannot disagree about it.
func LineageDiffers(production, replay map[string]string) bool {
	if len(production) == 0 || len(replay) == 0 {
		return false
	}
	a, b := production, replay
	if len(b) < len(a) {
		a, b = b, a
	}
	for k, va := range a {
		if vb, ok := b[k]; ok && va != vb {
			return true
		}
	}

	return false
}
