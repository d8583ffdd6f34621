"""``lockgate bench``: replay the same seeded load against several OpenAI-compatible targets and compare."""
