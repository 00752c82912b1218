"""`make bench`: the kit against the MLPerf Tiny reference int8 models (see bench/run.py)."""
