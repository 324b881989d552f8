"""Model builders: the paper's MNIST CNN (and, later, the VAE and cats-vs-dogs models)."""
