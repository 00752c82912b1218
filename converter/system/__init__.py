"""The process the kit runs in: TensorFlow set-up, native output capture, atomic output folders."""
