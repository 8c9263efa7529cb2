"""Front-ends that turn a model of some PPL into the engine's target, and back."""
