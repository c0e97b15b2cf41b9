"""Parity of every backend against the TensorFlow reference, with CI reports."""
