"""The paper's MNIST experiments: latent maps, interpolations, uncertainty holes."""
