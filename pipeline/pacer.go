package pipeline

// pacerStatus fills the derived fields of st.
func (p *Pipeline) pacerStatus(st *ControlStatus) {
	switch st.Mode {
	case ModeRate:
		st.EffectiveRate = st.Rate
	case ModePace:
		st.EffectivePace = st.Pace
	}
	st.Guardrail.State = GuardrailOK
	if st.Paused {
		st.PausedBy = "operator"
	}
}
