"""Cats vs dogs: ``training`` trains the paper's frozen trunk with Dropout -> Dense heads."""
