"""Models: input specs, the zoo, layer hooks, the embedded reference model."""
