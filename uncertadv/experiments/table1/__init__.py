"""Table 1 of the paper: ``report`` builds it end to end (attack sets, scores, the table files),
``detection`` computes each row and its markdown from saved scores, and ``figures`` draws the
ROC curves (Figs. 11-14) and the adversarial examples (Fig. 7)."""
