"""Input front-ends that turn raw sensor data into the features a model was trained on."""
