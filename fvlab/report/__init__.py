"""Reports: image files, grids, plots and the HTML report."""
