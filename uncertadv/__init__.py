"""uncertadv: uncertainty measures and adversarial-example detection (Smith & Gal, UAI 2018)."""

__version__ = "0.1.0"
