"""Tenants: API key records, per-key limits, usage accounting and the admin API's key management."""
