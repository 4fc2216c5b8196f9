"""The synthetic camera: parts with known defects on a conveyor, served as an MJPEG IP camera."""
