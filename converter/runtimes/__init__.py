"""Runtimes a converted model deploys with (tflm, aot) behind one interface (runtimes/base.py), the board
profiles, and the rendering, building and running of firmware projects that flows/, optimize/ and
partition/ all use. The table of runtimes is runtimes/registry.py."""
