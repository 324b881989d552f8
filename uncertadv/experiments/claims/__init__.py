"""The claims ledger (issue 17): each of the paper's claims, the measurement that tests it, and a
verdict rule fixed in code before the results it judges.

``rules`` holds the verdict rules (pure functions, committed first so that no rule is written
after its result is known); ``registry`` the numbered claims, the paper's wording and where the
paper makes each.
"""
