"""Object detection: a class heatmap of centres plus box size and offset (or distances to the box sides)."""
