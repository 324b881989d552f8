"""The paper's experiments: training recipes, attack sets, Table 1 and the figures.

``layout.py`` knows the results folders and seeds; the CLI calls in here, and this calls the
library (``uncertadv.mc``, ``measures``, ``attacks``, ...), never the other way round."""
