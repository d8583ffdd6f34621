"""Thin HTTP handlers; the logic lives in gateway.serving and gateway.runtime."""
