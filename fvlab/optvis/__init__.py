"""Feature-visualization engine: parameterizations, transforms, objectives, the render loop.

(Named ``fv`` rather than ``render`` so that the function :func:`fvlab.render` and this package
do not shadow each other.)
"""
