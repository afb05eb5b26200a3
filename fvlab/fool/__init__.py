"""Fooling constructions: models whose natural behaviour is unchanged but whose feature
visualizations show something else (the classifier-gated circuit; silent units)."""
