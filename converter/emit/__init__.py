"""Write the firmware-facing artifacts: C/C++ arrays, op resolver, settings and golden vectors."""
