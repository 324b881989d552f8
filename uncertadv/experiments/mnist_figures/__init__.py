"""The paper's MNIST figures: ``figures`` runs Figs. 1-6 and the Sec. 3.2 scatter through the VAE's
latent space, and ``summary`` renders SUMMARY.md from their files."""
