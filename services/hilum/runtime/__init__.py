"""The embedded stack: process supervision, Redis, Triton, entry points and the demo."""
