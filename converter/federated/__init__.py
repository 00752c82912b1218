"""Federated fine-tuning on Flower: partitions, the client, the server strategy, DP accounting and the
Ray simulation. Importing this package is cheap (no TensorFlow, Flower or Ray until they are used)."""
