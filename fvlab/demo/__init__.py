"""``fvlab demo``: every pillar on the embedded model, in one HTML report."""
