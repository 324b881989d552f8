"""The adaptive part of the paper's question: what is left of a detector against an attacker who knows it.

``protocol``: detectors, calibration and the adaptive attack sets; ``report``: adaptive.{csv,md,json};
``figures``: the evasion figure and gallery; ``hole_search``: the search through the VAE's latent space.
"""
