"""Morphology simulator: dysplastic cells and MDS / AA smear cohorts made from real crops.

No public image carries a dysplasia or MDS label. Everything this package writes is simulated and
says so (``cohort.csv`` and ``cells.csv`` carry a ``simulated`` note in ``README.txt``).
"""
