"""Photos and videos: face detection and alignment, restoration through a family, colour, paste-back, tracking,
image and video I/O. :class:`~panininet.pipeline.restorer.PaniniRestorer` is the entry point."""
