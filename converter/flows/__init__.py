"""The kit's commands as library functions: convert, validate, golden, firmware, flash."""
