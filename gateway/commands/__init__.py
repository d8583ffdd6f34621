"""CLI command groups that live outside ``gateway.cli``'s core."""
