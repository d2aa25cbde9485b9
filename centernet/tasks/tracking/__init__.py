"""Tracking as a task (CenterTrack, Zhou, Koltun & Krähenbühl 2020): detection plus each object's displacement to
where it was in the previous frame, read from the current image, the previous image and a heatmap of the previous
frame's objects; association of detections into tracks is a greedy match of points (:mod:`.association`)."""

from centernet.tasks.tracking.association import GreedyAssociator, Track
from centernet.tasks.tracking.task import TrackingTask

__all__ = ["GreedyAssociator", "Track", "TrackingTask"]
