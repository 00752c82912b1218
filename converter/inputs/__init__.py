"""What a run starts from: the float Keras model, its data, user builder functions, feature front-ends."""
