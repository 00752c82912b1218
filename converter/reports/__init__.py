"""What a run records: the manifest and human-readable reports."""
