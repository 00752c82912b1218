"""`tflm-kit optimize`: a search for the smallest deployment that keeps the float model's quality.

splits (held-out selection set) -> prepare (teacher + split data on disk) -> space (per-layer cluster
counts, as recipes) -> trial (convert + judge + cost, one Ray task) -> search (sensitivity, greedy,
constrained TPE) -> store (search.json, resume) -> pareto (fronts, search.md/png). The flow that ties
them together is converter/flows/optimize.py; docs/optimize.md describes it for users.
"""
