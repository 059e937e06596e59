"""Inference: the models on Triton (the only stage that calls Triton)."""
