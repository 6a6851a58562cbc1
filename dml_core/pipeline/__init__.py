"""The build: profiles, the model plan, and the stages data → features → label distances → tuning →
models → search that write every artifact."""
