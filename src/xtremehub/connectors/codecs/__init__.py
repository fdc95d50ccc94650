"""Decoders that can resume in the middle of a compressed object (gzip checkpoints)."""
