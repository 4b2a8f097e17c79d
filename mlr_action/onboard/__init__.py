"""The onboarding: reads a training script and drafts its program.md."""
