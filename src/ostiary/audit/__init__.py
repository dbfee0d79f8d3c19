"""Audit trail: events, the tamper-evident Merkle log, signed checkpoints, erasure and exporters."""
