"""Writers of a run's results: JSONL, JSON, CSV, the terminal table and the HTML report."""
