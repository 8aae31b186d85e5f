"""Self-contained HTML benchmark reports and the release gate that compares two runs."""
