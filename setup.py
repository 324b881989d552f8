"""The package list, which pyproject.toml cannot express: setuptools' ``packages.find`` only sees
packages whose folder is at their dotted path, and ``uncertadv.assets`` lives in the top-level
``assets/`` folder (mapped in pyproject.toml). Everything else is configured in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["uncertadv", "uncertadv.*"]) + ["uncertadv.assets"])
